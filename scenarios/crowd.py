"""The procurement market at scale (``SCENARIO``): many users whose queries overlap, many providers.

The quickstart's market (``scenarios.procurement``: its instance, mechanisms and providers) with a crowd
of ``market.users`` independent users in classes (``crowd.*``: each class its share of the users, Poisson
arrival rate, daily cycle, budget, value per unit of answer quality and query mix), one ledger account
each, and an auctioneer that keeps every open auction in flight. Invitations go to the providers whose
capability covers the query's topic (``market.coverage``), below their capacity (``market.capacity``), at
most ``market.max_bidders`` of them. The summary's ``metrics`` hold per-class figures, not a row per user.

A query's topic is its context's largest coordinate; a class's ``mix`` is the weight of the first half of
the coordinates (0.5 = uniform contexts, 1.0 = only the first half), so classes favour different providers.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from agents.providers import Provider, provider_strategies
from agents.users import DAY_SECONDS, CrowdUser
from market.core.ledger import to_minor, to_units
from market.core.mechanisms.base import MechanismError
from market.core.mechanisms.reverse import MECHANISMS
from market.runtime.auctioneer import ReverseAuctioneer
from market.runtime.config import ConfigError, require
from market.runtime.records import FeedbackAccepted, LedgerTransfer, Record, RoundClosed
from market.runtime.scenario import Factories, Scenario
from market.runtime.schema import CREDITS, MAX_SCALE, MAX_SECONDS, Int, Items, Real, Rule
from market.runtime.world import World
from scenarios import procurement

MAX_USERS = 10_000
MAX_PROVIDERS = 1_000
MAX_CLASSES = 16

DEFAULTS: dict[str, Any] = copy.deepcopy({k: v for k, v in procurement.DEFAULTS.items() if k != "hostile"})
DEFAULTS["run"].update({"rounds": 10_000, "checkpoint_every": 1000})
DEFAULTS["market"].update({
    "providers": 10,
    "users": 1000,
    "rate_limit": 0.0,  # providers bid in many auctions at once: the per-sender limit is off by default
    "capacity": 0,  # open auctions a provider may be invited to at once (0 = no limit)
    "max_bidders": 0,  # invitations per auction, drawn among the eligible (0 = every eligible provider)
    "coverage": 1.0,  # fraction of the query topics each provider serves
})
DEFAULTS["crowd"] = {
    "classes": ["casual", "power"],
    "shares": [0.8, 0.2],  # of the users, per class
    "rates": [0.01, 0.05],  # queries per simulated second, per user
    "daily": [0.5, 0.0],  # amplitude of the daily cycle of the rate, in [0, 1]
    "period": DAY_SECONDS,
    "budgets": [100.0, 1000.0],  # credits per user
    "values": [1.0, 1.5],  # what one unit of answer quality is worth to the user
    "mix": [0.5, 0.8],  # weight of the first half of the context coordinates
}

SCHEMA = {
    **{k: v for k, v in procurement.SCHEMA.items() if not k.startswith("hostile.")},
    "market.providers": Int(1, MAX_PROVIDERS),
    "market.users": Int(1, MAX_USERS),
    "market.capacity": Int(0, 1_000_000),
    "market.max_bidders": Int(0, MAX_PROVIDERS),
    "market.coverage": Real(0.0, 1.0, lo_open=True),
    "crowd.classes": Items(Rule("str"), MAX_CLASSES),
    "crowd.shares": Items(Real(0.0, 1.0), MAX_CLASSES),
    "crowd.rates": Items(Real(0.0, MAX_SCALE, lo_open=True), MAX_CLASSES),
    "crowd.daily": Items(Real(0.0, 1.0), MAX_CLASSES),
    "crowd.period": Real(1.0, MAX_SECONDS),
    "crowd.budgets": Items(CREDITS, MAX_CLASSES),
    "crowd.values": Items(Real(0.0, MAX_SCALE), MAX_CLASSES),
    "crowd.mix": Items(Real(0.0, 1.0), MAX_CLASSES),
}
CLASS_KEYS = ("shares", "rates", "daily", "budgets", "values", "mix")


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers summing to ``total`` in proportion to ``weights`` (largest remainders, ties to the lowest index)."""
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def classes(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The user classes as one table each, checked: every ``crowd.*`` list has one entry per class."""
    c = config["crowd"]
    names = c["classes"]
    require(len(names) >= 1 and len(set(names)) == len(names), "crowd.classes", names,
            "at least one class, names distinct")
    for name in names:
        require(name.isidentifier(), "crowd.classes", name, "class names that are identifiers (they prefix user ids)")
    for key in CLASS_KEYS:
        require(len(c[key]) == len(names), f"crowd.{key}", c[key], f"{len(names)} entries, one per class {names}")
    require(sum(c["shares"]) > 0, "crowd.shares", c["shares"], "shares with a positive sum")
    return [{"name": n, **{k: float(c[k][i]) for k in CLASS_KEYS}} for i, n in enumerate(names)]


def users(config: dict[str, Any]) -> list[tuple[str, dict[str, Any], int]]:
    """(user id, class, queries) of every user: classes get users by share, users get the run's queries in
    proportion to their arrival rates, so that a crowd sends ``run.rounds`` queries in all."""
    table = classes(config)
    counts = apportion(config["market"]["users"], np.array([k["shares"] for k in table]))
    members = [(f"{k['name']}-{j}", k) for k, count in zip(table, counts) for j in range(int(count))]
    quotas = apportion(config["run"]["rounds"], np.array([k["rates"] for _, k in members]))
    return [(uid, k, int(q)) for (uid, k), q in zip(members, quotas)]


def class_of(account: str) -> str:
    """A user's class from its id (``casual-17`` -> ``casual``)."""
    return account.rpartition("-")[0]


def _mixed(contexts: Any, mix: float, dim: int) -> Any:
    """The instance's context draw with the first half of the coordinates weighted ``mix`` (the rest 1 - mix)."""
    if mix == 0.5:
        return contexts
    weights = np.where(np.arange(dim) < dim // 2, 2.0 * mix, 2.0 * (1.0 - mix))

    def draw(rng: np.random.Generator) -> np.ndarray:
        return np.asarray(contexts(rng), float) * weights

    return draw


def _valued(sample: Any, value: float) -> Any:
    def reward(arm: int, x: np.ndarray, rng: np.random.Generator) -> float:
        return value * float(sample(arm, x, rng))

    return reward


def capabilities(n: int, d: int, coverage: float, rng: np.random.Generator) -> np.ndarray:
    """(n, d) bool: the query topics (context coordinates) each provider serves, ceil(coverage d) of them each."""
    k = max(1, math.ceil(coverage * d))
    order = np.argsort(rng.random((n, d)), axis=1)[:, :k]
    cover = np.zeros((n, d), dtype=bool)
    np.put_along_axis(cover, order, True, axis=1)
    return cover


class CrowdMeter:
    """Per-class figures from the log's records: users, queries, served, unsold, spend, value, utility.

    Reads typed records only (the auction's record names its user; feedback names its sender), so its memory
    is one entry per class, whatever the number of users."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.names = [k["name"] for k in classes(config)]
        counts = apportion(config["market"]["users"], np.array([k["shares"] for k in classes(config)]))
        m = config["market"]
        self.invitations = {"max_bidders": m["max_bidders"], "capacity": m["capacity"], "coverage": m["coverage"],
                            "providers": m["providers"], "users": m["users"]}
        self.figures = {n: {"users": int(c), "queries": 0, "served": 0, "spend_minor": 0, "value": 0.0,
                            "invited": 0, "bids": 0, "full": 0} for n, c in zip(self.names, counts)}

    def _of(self, account: str) -> dict[str, Any] | None:
        return self.figures.get(class_of(account))

    def observe(self, rec: Record) -> None:
        if isinstance(rec, RoundClosed):
            f = self._of(str(rec.extra.get("user", "")))
            if f is None:
                return
            f["queries"] += 1
            f["served"] += bool(rec.winner)
            invited = rec.extra.get("invited")
            f["invited"] += len(invited) if invited is not None else len(rec.payments_minor)
            f["bids"] += sum(rec.extra["present"])
            f["full"] += rec.extra.get("full", 0)
        elif isinstance(rec, LedgerTransfer) and rec.memo == "payment":
            f = self._of(rec.src)
            if f is not None:
                f["spend_minor"] += rec.amount_minor
        elif isinstance(rec, FeedbackAccepted):
            f = self._of(rec.user)
            if f is not None:
                f["value"] += rec.reward

    def result(self) -> dict[str, Any]:
        per_class = {}
        for n, f in self.figures.items():
            spend = to_units(f["spend_minor"])
            q = f["queries"]
            per_class[n] = {"users": f["users"], "queries": q, "served": f["served"], "spend": spend,
                            "value": f["value"], "utility": f["value"] - spend,
                            "bidders_per_auction": f["bids"] / q if q else 0.0,
                            "invited_per_auction": f["invited"] / q if q else 0.0,
                            "full_per_auction": f["full"] / q if q else 0.0}
        return {"classes": per_class, "invitations": dict(self.invitations)}


def observers(config: dict[str, Any], seed: int) -> list[Any]:
    return [CrowdMeter(config)]


def describe(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """Per class: users, queries, served, spend, value and utility; per provider: wins and utility."""
    received, paid = summary["received"], summary["paid"]
    met = summary.get("metrics", {})
    rows = [f"{'class':<12}{'users':>7}{'queries':>9}{'served':>9}{'spend':>12}{'value':>12}{'utility':>12}"]
    for name, f in met.get("classes", {}).items():
        rows.append(f"{name:<12}{f['users']:>7}{f['queries']:>9}{f['served']:>9}{f['spend']:>12.3f}"
                    f"{f['value']:>12.3f}{f['utility']:>12.3f}")
    providers = sorted(a for a in summary["balances"] if a.startswith("provider-"))
    util = [to_units(received.get(p, {}).get("payment", 0)) - to_units(paid.get(p, {}).get("serving cost", 0))
            for p in providers]
    wins = [summary["wins"].get(p, 0) for p in providers]
    inv = met.get("invitations", {})
    rows.append("")
    rows.append(f"providers: {len(providers)}, wins {sum(wins)}, utility total {sum(util):.3f}, "
                f"max {max(util, default=0.0):.3f}, min {min(util, default=0.0):.3f}")
    rows.append(f"invitations: at most {inv.get('max_bidders') or 'all'} bidders per auction, capacity "
                f"{inv.get('capacity') or 'unlimited'}, coverage {inv.get('coverage')}")
    rows.append(f"market: mechanism {config['mechanism']['name']}, {summary['rounds']} auctions, "
                f"{summary['messages']} messages, {sum(summary['rejects'].values())} rejected, {summary['drops']} lost")
    return "\n".join(rows)


def metrics(summary: dict[str, Any], config: dict[str, Any]) -> dict[str, float]:
    """Figures a sweep can collect: per class ``<class>.utility`` / ``.spend`` / ``.value`` / ``.served_fraction``,
    the crowd's ``user_utility``, and each provider's utility as ``provider_utility.<id>``, in credits."""
    received, paid = summary["received"], summary["paid"]
    out: dict[str, float] = {}
    total = 0.0
    for name, f in summary.get("metrics", {}).get("classes", {}).items():
        out[f"{name}.utility"] = f["utility"]
        out[f"{name}.spend"] = f["spend"]
        out[f"{name}.value"] = f["value"]
        out[f"{name}.served_fraction"] = f["served"] / f["queries"] if f["queries"] else 0.0
        total += f["utility"]
    out["user_utility"] = total
    for p in (f"provider-{i}" for i in range(config["market"]["providers"])):
        out[f"provider_utility.{p}"] = (to_units(received.get(p, {}).get("payment", 0))
                                        - to_units(paid.get(p, {}).get("serving cost", 0)))
    return out


def build(world: World, config: dict[str, Any]) -> None:
    m = config["market"]
    require(m["rate_limit"] == 0 or m["rate_burst"] >= 1, "market.rate_burst", m["rate_burst"],
            f"at least 1 frame with market.rate_limit = {m['rate_limit']} (0 turns the limit off)")
    require(config["quality"]["model"] == "linear" or m["max_bidders"] <= 2, "market.max_bidders", m["max_bidders"],
            "at most the 2 providers of the mmlu model")
    inst = procurement.instance(config, world.seed)
    try:
        mechanism = inst.mechanism.build()
    except MechanismError as err:
        raise ConfigError(f"mechanism.params: {err}") from None
    crowd = users(config)
    eligible = None
    if m["coverage"] < 1.0:
        cover = capabilities(inst.n, inst.dim, m["coverage"], world.rng("capabilities"))

        def eligible(x: np.ndarray) -> np.ndarray:
            return cover[:, int(np.argmax(x))]

    auctioneer = ReverseAuctioneer(
        world.auctioneer_id, mechanism, inst.providers, world.ledger, world.record, world.rng("mechanism"),
        bid_window=m["bid_window"], feedback_timeout=m["feedback_timeout"], users=[u for u, _, _ in crowd],
        rate_limit=m["rate_limit"], rate_burst=m["rate_burst"], overlap=True, capacity=m["capacity"],
        max_bidders=m["max_bidders"], eligible=eligible,
        invite_rng=world.rng("invitations") if m["max_bidders"] else None,
    )
    world.add(auctioneer)
    strategies = provider_strategies(config["strategies"], inst.providers, mechanism)
    for pid, prior, strategy in zip(inst.providers, inst.priors, strategies):
        world.ledger.open(pid, overdraft=None)
        world.add(Provider(pid, prior, world.wallet(pid), strategy))
    c = config["crowd"]
    for uid, k, quota in crowd:
        world.ledger.open(uid, balance=to_minor(k["budgets"]))
        world.add(CrowdUser(uid, quota, inst.providers, _valued(inst.quality.sample, k["values"]),
                            _mixed(inst.contexts, k["mix"], inst.dim), rate=k["rates"], daily=k["daily"],
                            period=c["period"]), principal=True)
    procurement.wire(world, config)

SCENARIO = Scenario(
    "crowd", DEFAULTS, build, describe=describe, metrics=metrics, observers=observers,
    factories=(Factories("mechanism", MECHANISMS, procurement.SUPPLIED_PARAMS),), instance=None, schema=SCHEMA,
)
