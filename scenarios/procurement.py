"""Builders of the procurement market: a user buys answers from LLM providers by reverse auction.

``quickstart`` is the built-in default: 1 user, 5 truthful providers with private per-query costs
and linear context-dependent quality, the Myerson-optimal auction with known qualities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.hostile import add_hostiles
from agents.providers import Provider
from agents.strategies import BidderFacts, build_strategy
from agents.users import ProcurementUser
from market.core.ledger import to_minor
from market.core.mechanisms.priors import CostPriors, UniformCost
from market.core.mechanisms.reverse import build_mechanism
from market.core.quality import LinearQuality, ReplayQuality, load_llm_prices
from market.core.wire import decode
from market.runtime.auctioneer import ReverseAuctioneer
from market.runtime.config import ConfigError, require
from market.runtime.faults import DEFAULTS as FAULT_DEFAULTS
from market.runtime.faults import MAX_COPIES, check_agents, link_graph, max_route_delay, parse_faults
from market.runtime.records import MessageSent, Record, RoundClosed
from market.runtime.world import World

DEFAULTS: dict[str, Any] = {
    "run": {"seed": 0, "rounds": 1000, "checkpoint_every": 100},  # checkpoint every K rounds (0 = never)
    "market": {
        "providers": 5,
        "dim": 8,
        "interarrival": 1.0,
        "bid_window": 0.5,
        "feedback_timeout": 60.0,
        "rate_limit": 100.0,  # frames per simulated second the auctioneer takes from one sender (0 = no limit)
        "rate_burst": 200.0,
        "user_budget": 1.0e6,
        "latency": 0.0,
        "jitter": 0.0,
        "loss": 0.0,
        "copies": 1,  # transmissions of each frame on lossy links; receivers drop extras by sequence number
    },
    "quality": {
        "model": "linear",  # "linear" (theta . x + noise) or "mmlu" (RouteLLM MMLU correctness replay)
        "noise": "gaussian",
        "scale": 0.1,
        "value_scale": 2.0,
        "value_per_correct": 0.05,  # mmlu: what a correct answer is worth to the user, in $
        "embedding_dim": 8,  # mmlu: subjects projected to this many dimensions (0 = one-hot)
    },
    "costs": {
        "c_lo": 0.0,
        "c_cap": 1.0,
        "prompt_tokens": 400,  # mmlu: a query's size, priced with the models' $/token
        "answer_tokens": 200,
        "spread": 0.5,  # mmlu: cost ~ U[(1 - spread) x list price, (1 + spread) x list price]
    },
    "mechanism": {"name": "myerson", "params": {}},
    "strategies": {"default": "truthful", "overrides": {}, "params": {}},
    "faults": dict(FAULT_DEFAULTS),  # market/faults.py: link faults, partitions, crashes
    "hostile": {"agents": [], "period": 10.0, "flood": 200},  # agents/hostile.py
}


# The two models RouteLLM's MMLU table scores, and their list prices' names in market/data/llm_prices.csv.
MMLU_PRICE_NAMES = ("together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")


@dataclass(frozen=True, slots=True)
class Instance:
    """The market's hidden truth: who is good at what, and what serving costs."""

    providers: tuple[str, ...]
    quality: Any  # LinearQuality or ReplayQuality: .mean(x) (n,), .sample(arm, x, rng)
    priors: tuple[UniformCost, ...]
    contexts: Callable[[np.random.Generator], np.ndarray]

    @property
    def n(self) -> int:
        return len(self.providers)


def instance(config: dict[str, Any], seed: int) -> Instance:
    """Linear: theta (n, d) with ||theta_i||_1 = value_scale, costs U[c_lo, c_cap], x ~ U[0, 1]^d.
    MMLU: two real models, contexts are question subjects, costs priced from list prices."""
    m, q, c = config["market"], config["quality"], config["costs"]
    if q["model"] == "linear":
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E7A]))
        theta = rng.uniform(0.0, 1.0, (m["providers"], m["dim"]))
        theta *= q["value_scale"] / theta.sum(axis=1, keepdims=True)
        d = m["dim"]
        prior = UniformCost(c["c_lo"], c["c_cap"])
        return Instance(
            tuple(f"provider-{i}" for i in range(m["providers"])),
            LinearQuality(theta, noise=q["noise"], scale=q["scale"]),
            (prior,) * m["providers"],
            lambda rng: rng.uniform(0.0, 1.0, d),
        )
    require(q["model"] == "mmlu", "quality.model", q["model"], "'linear' or 'mmlu'")
    require(0.0 <= c["spread"] < 1.0, "costs.spread", c["spread"], "a number in [0, 1)")
    replay = _ScaledReplay(ReplayQuality(dim=q["embedding_dim"] or None), q["value_per_correct"])
    prices = {row["model"]: row for row in load_llm_prices()}
    priors = []
    for name in MMLU_PRICE_NAMES:
        row = prices[name]
        list_price = c["prompt_tokens"] * row["input_cost_per_token"] + c["answer_tokens"] * row["output_cost_per_token"]
        priors.append(UniformCost((1 - c["spread"]) * list_price, (1 + c["spread"]) * list_price))
    counts = np.array([len(x) for x in replay.replay.correct], dtype=float)
    weights = counts / counts.sum()
    embedding = replay.replay.embedding
    return Instance(
        tuple(replay.replay.MODELS),
        replay,
        tuple(priors),
        lambda rng: embedding[rng.choice(len(weights), p=weights)],
    )


@dataclass(frozen=True, slots=True)
class _ScaledReplay:
    """Real correctness (0/1) times what a correct answer is worth: rewards in money units."""

    replay: ReplayQuality
    value: float

    def mean(self, x: np.ndarray) -> np.ndarray:
        return self.value * self.replay.mean(x)

    def sample(self, arm: int, x: np.ndarray, rng: np.random.Generator) -> float:
        return self.value * self.replay.sample(arm, x, rng)


class RegretMeter:
    """Virtual-surplus regret against the optimal static mechanism that knows the qualities (spec 1.4).

    Watches log records: contexts from query messages, bids from bid messages, winners from round
    records. Costs are taken to be the bids, which is exact for truthful providers; with strategic
    ones it is the regret against their reports. Also the winner's payment mean and spread.
    """

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.index = {p: i for i, p in enumerate(inst.providers)}
        self.priors = CostPriors.of(list(inst.priors), inst.n)
        self._contexts: dict[int, np.ndarray] = {}
        self._bids: dict[int, np.ndarray] = {}
        self.regret = 0.0
        self.rounds = 0
        self.oracle_hits = 0
        self.paid_rounds = 0
        self._pay_mean = 0.0
        self._pay_m2 = 0.0

    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent):
            if rec.kind == "query":
                q = decode(rec.frame)
                self._contexts[q.query_id] = np.asarray(q.context)
            elif rec.kind == "bid" and rec.src in self.index:
                b = decode(rec.frame)
                bids = self._bids.setdefault(b.round, np.full(self.inst.n, np.nan))
                if np.isnan(bids[self.index[rec.src]]):
                    bids[self.index[rec.src]] = b.amount
        elif isinstance(rec, RoundClosed):
            x = self._contexts.pop(rec.query_id, None)
            bids = self._bids.pop(rec.round, None)
            if x is None:
                return
            self.rounds += 1
            surplus = self.inst.quality.mean(x) - self.priors.virtual_cost(np.nan_to_num(bids, nan=0.0)) \
                if bids is not None else np.full(self.inst.n, -np.inf)
            if bids is not None:
                surplus[np.isnan(bids)] = -np.inf
            best = int(np.argmax(surplus))
            opt = max(0.0, float(surplus[best]))
            won = self.index.get(rec.winner)
            alg = float(surplus[won]) if won is not None else 0.0
            self.regret += opt - alg
            self.oracle_hits += (won == best) if opt > 0 else (won is None)
            if won is not None:
                pay = rec.payments_minor[won] / 1e6
                self.paid_rounds += 1
                delta = pay - self._pay_mean
                self._pay_mean += delta / self.paid_rounds
                self._pay_m2 += delta * (pay - self._pay_mean)

    def result(self) -> dict[str, float]:
        k = self.paid_rounds
        return {
            "regret": self.regret,
            "oracle_agreement": self.oracle_hits / self.rounds if self.rounds else 0.0,
            "payment_mean": self._pay_mean,
            "payment_std": float(np.sqrt(self._pay_m2 / (k - 1))) if k > 1 else 0.0,
        }


def observers(config: dict[str, Any], seed: int) -> list[Any]:
    """Metric observers of a run; replay rebuilds them from the logged config and seed."""
    return [RegretMeter(instance(config, seed))]


def make_mechanism(spec: dict[str, Any], inst: Instance, dim: int, rounds: int) -> Any:
    """The mechanism named in the config. Myerson knows the qualities (linear model only); learners
    get (n, d) and ROSA's mu defaults to T^-1/2, the rate that balances learning and resampling regret."""
    name, params = spec["name"], dict(spec["params"])
    priors = list(inst.priors)
    if name == "myerson":
        theta = getattr(inst.quality, "theta", None)
        require(theta is not None, "mechanism.name", name, "a learning mechanism: Myerson needs known linear qualities")
        return build_mechanism(name, theta=theta, priors=priors, **params)
    if "rosa" in name:
        params.setdefault("mu", 1.0 / np.sqrt(max(rounds, 1)))
    return build_mechanism(name, n=inst.n, d=dim, priors=priors, **params)


def describe(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """The run as a table: per provider wins, payments and utility; the user's spend and value."""
    received, paid = summary["received"], summary["paid"]
    providers = sorted(a for a in summary["balances"] if a not in ("user", "external"))
    w = max([len("provider")] + [len(p) for p in providers]) + 2
    rows = [f"{'provider':<{w}}{'wins':>7}{'payments':>12}{'costs':>12}{'utility':>12}"]
    for p in providers:
        pay = received.get(p, {}).get("payment", 0) / 1e6
        cost = paid.get(p, {}).get("serving cost", 0) / 1e6
        rows.append(f"{p:<{w}}{summary['wins'].get(p, 0):>7}{pay:>12.3f}{cost:>12.3f}{pay - cost:>12.3f}")
    spend = paid.get("user", {}).get("payment", 0) / 1e6
    value = summary["feedback"]["reward_sum"]
    rows.append("")
    rows.append(f"user: {summary['rounds']} queries, {summary['rounds'] - summary['unsold']} served, "
                f"spend {spend:.3f}, value {value:.3f}, utility {value - spend:.3f}")
    rejects = sum(summary["rejects"].values())
    met = summary.get("metrics")
    if met:
        rows.append(f"regret {met['regret']:.3f} (virtual surplus vs the optimal auction that knows the "
                    f"qualities), oracle choice in {100 * met['oracle_agreement']:.1f}% of rounds")
        rows.append(f"payment to the winner: mean {met['payment_mean']:.4f}, sd {met['payment_std']:.4f}")
    rows.append(f"market: mechanism {config['mechanism']['name']}, {summary['messages']} messages, "
                f"{rejects} rejected, {summary['drops']} lost")
    return "\n".join(rows)


def metrics(summary: dict[str, Any], config: dict[str, Any]) -> dict[str, float]:
    """Figures a sweep can collect: the user's utility, spend, value and served fraction, and each
    provider's utility (payments minus serving costs) as ``provider_utility.<id>``, in credits."""
    received, paid = summary["received"], summary["paid"]
    spend = paid.get("user", {}).get("payment", 0) / 1e6
    value = summary["feedback"]["reward_sum"]
    rounds = summary["rounds"]
    out = {
        "user_utility": value - spend,
        "user_spend": spend,
        "user_value": value,
        "served_fraction": (rounds - summary["unsold"]) / rounds if rounds else 0.0,
    }
    for p in instance(config, config["run"]["seed"]).providers:
        pay = received.get(p, {}).get("payment", 0) / 1e6
        out[f"provider_utility.{p}"] = pay - paid.get(p, {}).get("serving cost", 0) / 1e6
    return out


def provider_strategy(name: str, index: int, mechanism: Any, strategies: dict[str, Any]) -> Any:
    """Provider ``index``'s strategy ``name`` with parameters ``strategies.params.<name>``, bidding under
    the mechanism's public rules (bid range, resampling probability)."""
    facts = BidderFacts(index, mechanism.n, float(mechanism.cost_floor), float(mechanism.cost_cap),
                        getattr(mechanism, "mu", None))
    params = strategies["params"].get(name, {})
    require(isinstance(params, dict), f"strategies.params.{name}", params, "a table of parameters")
    try:
        return build_strategy(name, facts, **params)
    except ValueError as err:
        raise ConfigError(f"strategies.overrides.provider-{index}: {err}") from None


def build(world: World, config: dict[str, Any]) -> None:
    m = config["market"]
    require(m["providers"] >= 1, "market.providers", m["providers"], "at least 1")
    require(m["dim"] >= 1, "market.dim", m["dim"], "at least 1")
    require(config["run"]["rounds"] >= 0, "run.rounds", config["run"]["rounds"], "at least 0")
    require(m["interarrival"] > 0, "market.interarrival", m["interarrival"], "> 0")
    require(m["bid_window"] > 0, "market.bid_window", m["bid_window"], "> 0")
    require(1 <= m["copies"] <= MAX_COPIES, "market.copies", m["copies"], f"an integer in [1, {MAX_COPIES}]")
    inst = instance(config, world.seed)
    dim = len(inst.contexts(np.random.default_rng(0)))
    mechanism = make_mechanism(config["mechanism"], inst, dim, config["run"]["rounds"])

    world.ledger.open("user", balance=to_minor(m["user_budget"]))
    auctioneer = ReverseAuctioneer(
        world.auctioneer_id, mechanism, inst.providers, world.ledger, world.record, world.rng("mechanism"),
        bid_window=m["bid_window"], feedback_timeout=m["feedback_timeout"],
        users=("user",), rate_limit=m["rate_limit"], rate_burst=m["rate_burst"],
    )
    world.add(auctioneer)
    strategies = config["strategies"]
    for i, (pid, prior) in enumerate(zip(inst.providers, inst.priors)):
        world.ledger.open(pid, overdraft=None)
        name = strategies["overrides"].get(pid, strategies["default"])
        world.add(Provider(pid, prior, world.wallet(pid), provider_strategy(name, i, mechanism, strategies)))
    world.add(
        ProcurementUser(
            "user", config["run"]["rounds"], inst.providers, inst.quality.sample, inst.contexts,
            interarrival=m["interarrival"],
        ),
        principal=True,
    )
    add_hostiles(world, config["hostile"], inst.providers)
    faults = parse_faults(config["faults"])
    spokes = [a.id for a in world.agents if a.id != world.auctioneer_id]
    check_agents(faults, [world.auctioneer_id, *spokes], world.auctioneer_id)
    base = {"latency": m["latency"], "jitter": m["jitter"], "loss": m["loss"], "copies": m["copies"]}
    if m["latency"] or m["jitter"] or m["loss"] or faults.network:
        world.graph = link_graph(faults, world.auctioneer_id, spokes, base)
        world.partitions = faults.partitions
    world.crashes = faults.crashes
    world.drain_seconds = m["bid_window"] + max_route_delay(world.graph)
