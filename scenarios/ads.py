"""The advertising market (``SCENARIO``): MOSAIC aggregation auctions (arXiv 2405.05905) over LLM replies.

One user asks the paper's 50 advertising queries; each query has its two advertisers (brand, one-line
description, own prompted LLM); the platform runs MOSAIC with M candidates from the baseline or the
context-aware proposal. ``proposal = "both"`` asks every query twice, once per proposal (an A/B test on
the same queries), and reports the two side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.ad_strategies import AD_STRATEGIES, build_ad_strategy
from agents.ad_users import AdUser
from agents.advertisers import Advertiser
from market.core.ledger import to_minor, to_units
from market.core.lm.ads import AdInstance, catalogue_instance, ngram_instance
from market.core.mechanisms.aggregation import AGGREGATIONS
from market.core.registry import HOW_TO_REGISTER
from market.core.seeding import derive_rng
from market.data import ad_queries
from market.runtime.bus import star_graph
from market.runtime.config import require
from market.runtime.platform import PROPOSALS, REWARD_AUCTIONS, AdPlatform, lm_reply, reply_mentions
from market.runtime.records import FeedbackAccepted, MessageSent, Record, RoundClosed
from market.runtime.scenario import Factories, Scenario
from market.runtime.schema import CREDITS, DELAY, DURATION, MAX_SCALE, PROBABILITY, Choice, Int, Real, Registered
from market.runtime.world import World

DEFAULTS: dict[str, Any] = {
    "run": {"seed": 0, "rounds": 50},
    "market": {
        "queries": 50,
        "candidates": 20,
        "tau": 1.0,
        "proposal": "context",
        "lm": "catalogue",
        "interarrival": 1.0,
        "report_window": 0.5,
        "feedback_timeout": 60.0,
        "advertiser_budget": 1.0e4,
        "max_abs_reward": 1.0e6,
        "latency": 0.0,
        "jitter": 0.0,
        "loss": 0.0,
    },
    "mechanism": {"name": "mosaic", "params": {}},
    "strategies": {"default": "truthful", "overrides": {}},
}

LMS = ("catalogue", "ngram")
# The arguments the platform (MOSAIC) or the fast engine (token auction) gives an aggregation auction.
SUPPLIED_PARAMS = frozenset({"rewards", "log_ref", "log_gen", "tau", "token_probs", "bids"})
PLATFORM_ACCOUNT = "platform"

# Each key's range (market/runtime/schema.py; run.seed and run.rounds are common). ``mechanism.name`` is any
# aggregation auction (the fast engine of market/lab/deviation.py also plays the token auction); the market
# itself takes only the reward auctions, checked when it is built.
SCHEMA = {
    "market.queries": Int(1, len(ad_queries())),
    "market.candidates": Int(1, 256),  # a candidates message holds at most 256 replies (market/core/wire.py)
    "market.tau": Real(0.0, MAX_SCALE, lo_open=True),
    "market.proposal": Choice(*PROPOSALS, "both"),
    "market.lm": Choice(*LMS),
    "market.interarrival": DURATION,
    "market.report_window": DURATION,
    "market.feedback_timeout": DURATION,
    "market.advertiser_budget": CREDITS,
    "market.max_abs_reward": Real(0.0, MAX_SCALE, lo_open=True),
    "market.latency": DELAY,
    "market.jitter": DELAY,
    "market.loss": PROBABILITY,
    "strategies.default": Registered(AD_STRATEGIES),
}


def proposals(config: dict[str, Any]) -> tuple[str, ...]:
    """The proposal of each round, cycled by round number."""
    p = config["market"]["proposal"]
    return PROPOSALS if p == "both" else (p,)


def instances(config: dict[str, Any], seed: int) -> list[AdInstance]:
    """The market's hidden truth: one LM per query, built from the run seed and the query's position."""
    m = config["market"]
    make = catalogue_instance if m["lm"] == "catalogue" else ngram_instance
    out = []
    for k, query in enumerate(ad_queries()[: m["queries"]]):
        rng = derive_rng(seed, "ads-instance", k)
        out.append(make(query, rng, tau=m["tau"]))
    return out


def asked(config: dict[str, Any]) -> list[int]:
    """Query ids in asking order: cycling through the queries, each asked once per proposal in a row."""
    q, arms = config["market"]["queries"], len(proposals(config))
    return [(k // arms) % q for k in range(config["run"]["rounds"] * arms)]


class AdsMeter:
    """Per-proposal metrics from log records, with rewards from the hidden truth (true, not reported).

    Watches candidate sets (platform messages), round records (allocation q, q without each advertiser,
    ESS, payments, shown index) and the user's feedback (usefulness log pi_ref of the shown reply).
    Reward gain of i: E_q[r_i] − E_{q_-i}[r_i] on the same candidates (spec ambiguity 8.4, option (i)).
    """

    KEYS = ("rounds", "revenue", "advertiser_utility", "advertiser_reward", "reward_gain", "usefulness",
            "mentioned", "ess")

    def __init__(self, config: dict[str, Any], seed: int, platform: str = "auctioneer", user: str = "user") -> None:
        self.instances = instances(config, seed)
        self.platform = platform
        self.user = user
        self._candidates: dict[int, tuple[tuple[int, ...], ...]] = {}
        self._arm_of: dict[int, str] = {}
        self.sums = {arm: dict.fromkeys(self.KEYS, 0.0) for arm in proposals(config)}
        self.feedback = {arm: 0 for arm in proposals(config)}

    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent) and rec.src == self.platform and rec.kind == "candidates":
            msg = rec.message()
            self._candidates[msg.round] = msg.replies
        elif isinstance(rec, FeedbackAccepted) and rec.user == self.user:  # a rating the platform accepted
            arm = self._arm_of.pop(rec.round, None)
            if arm is not None:
                self.sums[arm]["usefulness"] += rec.reward
                self.feedback[arm] += 1
        elif isinstance(rec, RoundClosed):
            r, qid, payments, extra = rec.round, rec.query_id, rec.payments_minor, rec.extra
            replies = self._candidates.pop(r, None)
            if replies is None or extra.get("proposal") not in self.sums:
                return
            arm = extra["proposal"]
            self._arm_of[r] = arm
            inst = self.instances[qid]
            ys = [lm_reply(inst, y) for y in replies]
            rewards = inst.rewards(ys)  # (n, M) true rewards
            q, q_without = np.asarray(extra["q"]), np.asarray(extra["q_without"])
            pay = to_units(np.asarray(payments, dtype=float))
            expected = rewards @ q
            s = self.sums[arm]
            s["rounds"] += 1
            s["revenue"] += float(pay.sum())
            s["advertiser_reward"] += float(expected.mean())
            s["advertiser_utility"] += float((expected - pay).mean())
            s["reward_gain"] += float((expected - np.einsum("im,im->i", q_without, rewards)).mean())
            s["mentioned"] += float(reply_mentions(inst, replies[extra["shown"]]).mean())
            s["ess"] += float(extra["ess"])

    def result(self) -> dict[str, Any]:
        """Per proposal: totals of revenue, means per round of the rest (per advertiser where it applies)."""
        out: dict[str, Any] = {}
        for arm, s in self.sums.items():
            n = s["rounds"] or 1.0
            out[arm] = {
                "rounds": int(s["rounds"]),
                "revenue": s["revenue"],
                **{k: s[k] / n for k in self.KEYS if k not in ("rounds", "revenue", "usefulness")},
                "usefulness": s["usefulness"] / (self.feedback[arm] or 1),
            }
        return out


class PositionMeter:
    """Per brand position i (advertiser i of every query), from log records with rewards from the hidden truth:
    Σ over auctions of the interim utility E_q[r_i] − p_i (payments as settled in the ledger) and the number of
    candidates and of shown replies that mention brand i; the user's Σ E_q[log pi_ref] and the revenue.
    Deviation runs through the market read it (``market/deviation.py: play_ads_market``)."""

    def __init__(self, config: dict[str, Any], seed: int, platform: str = "auctioneer") -> None:
        self.instances = instances(config, seed)
        self.platform = platform
        n = max(inst.n for inst in self.instances)
        self.utility = np.zeros(n)
        self.candidate_mentions = np.zeros(n)
        self.shown_mentions = np.zeros(n)
        self.user = 0.0
        self.revenue = 0.0
        self.rounds = 0
        self.candidates = 0
        self._candidates: dict[int, tuple[tuple[int, ...], ...]] = {}

    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent) and rec.src == self.platform and rec.kind == "candidates":
            msg = rec.message()
            self._candidates[msg.round] = msg.replies
        elif isinstance(rec, RoundClosed):
            qid, payments, extra = rec.query_id, rec.payments_minor, rec.extra
            replies = self._candidates.pop(rec.round, None)
            if replies is None:
                return
            inst = self.instances[qid]
            ys = [lm_reply(inst, y) for y in replies]
            q = np.asarray(extra["q"])
            n = inst.n
            self.utility[:n] += inst.rewards(ys) @ q - to_units(np.asarray(payments, dtype=float))
            self.user += float(q @ inst.log_ref(ys))
            self.revenue += to_units(sum(payments))
            self.candidate_mentions[:n] += np.sum([reply_mentions(inst, y) for y in replies], axis=0)
            self.shown_mentions[:n] += reply_mentions(inst, replies[extra["shown"]])
            self.rounds += 1
            self.candidates += len(replies)

    def result(self) -> dict[str, Any]:
        return {"positions": {
            "rounds": self.rounds, "utility": self.utility.tolist(), "user": self.user, "revenue": self.revenue,
            "candidate_mention_rate": (self.candidate_mentions / max(self.candidates, 1)).tolist(),
            "shown_mention_rate": (self.shown_mentions / max(self.rounds, 1)).tolist(),
        }}


def observers(config: dict[str, Any], seed: int) -> list[Any]:
    """Metric observers of a run; replay rebuilds them from the logged config and seed."""
    return [AdsMeter(config, seed)]


def metrics(summary: dict[str, Any], config: dict[str, Any]) -> dict[str, float]:
    """Flat metrics: revenue per round, mean advertiser utility / reward / reward gain per round, mean
    usefulness, fraction of brands mentioned, ESS; keys suffixed by proposal when both were run."""
    per_arm = summary["metrics"]
    both = len(per_arm) > 1
    out: dict[str, float] = {}
    for arm, m in per_arm.items():
        rounds = m["rounds"]
        row = {
            "rounds": float(rounds),
            "revenue_per_round": m["revenue"] / rounds if rounds else 0.0,
            **{k: m[k] for k in ("advertiser_utility", "advertiser_reward", "reward_gain", "usefulness",
                                  "mentioned", "ess")},
        }
        out.update({(f"{k}_{arm}" if both else k): v for k, v in row.items()})
    return out


def describe(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """The run as a table, one column per proposal."""
    per_arm = summary["metrics"]
    arms = list(per_arm)
    labels = [
        ("rounds", "rounds", "{:.0f}"),
        ("revenue", "revenue (total)", "{:.3f}"),
        ("revenue_per_round", "revenue per round", "{:.4f}"),
        ("advertiser_utility", "advertiser utility", "{:.4f}"),
        ("advertiser_reward", "advertiser reward", "{:.4f}"),
        ("reward_gain", "reward gain", "{:.4f}"),
        ("usefulness", "usefulness log pi_ref", "{:.4f}"),
        ("mentioned", "brands mentioned", "{:.3f}"),
        ("ess", "effective sample size", "{:.2f}"),
    ]
    rows = [f"{'':<24}" + "".join(f"{a:>14}" for a in arms)]
    for key, label, fmt in labels:
        vals = []
        for a in arms:
            m = per_arm[a]
            v = m["revenue"] / m["rounds"] if key == "revenue_per_round" and m["rounds"] else m.get(key, 0.0)
            vals.append(fmt.format(v))
        rows.append(f"{label:<24}" + "".join(f"{v:>14}" for v in vals))
    mk = config["market"]
    rejects = sum(summary["rejects"].values())
    platform = to_units(summary["balances"].get(PLATFORM_ACCOUNT, 0))
    rows.append("")
    rows.append("advertiser figures are means per advertiser per round; rewards are true rewards")
    rows.append(f"market: {config['mechanism']['name']}, M = {mk['candidates']}, tau = {mk['tau']}, "
                f"{mk['lm']} LM, platform balance {platform:.3f}, {summary['messages']} messages, "
                f"{rejects} rejected, {summary['drops']} lost")
    return "\n".join(rows)


def build(world: World, config: dict[str, Any]) -> None:
    m = config["market"]
    require(config["mechanism"]["name"] in REWARD_AUCTIONS, "mechanism.name", config["mechanism"]["name"],
            f"one of {list(REWARD_AUCTIONS)}")
    insts = instances(config, world.seed)
    queries = ad_queries()[: m["queries"]]
    names = [list(q.advertisers) for q in queries]

    world.ledger.open(PLATFORM_ACCOUNT, overdraft=None)  # Rochet payments can be rebates
    world.add(AdPlatform(
        world.auctioneer_id, config["mechanism"]["name"], insts, names, world.ledger, world.record,
        world.rng("mechanism"), candidates=m["candidates"], proposals=proposals(config),
        report_window=m["report_window"], feedback_timeout=m["feedback_timeout"], account=PLATFORM_ACCOUNT,
        max_abs_reward=m["max_abs_reward"], params=dict(config["mechanism"]["params"]),
    ))
    strategies = config["strategies"]
    for key, name in [("strategies.default", strategies["default"]), *(
            (f"strategies.overrides.{a}", s) for a, s in strategies["overrides"].items())]:
        require(name in AD_STRATEGIES, key, name,
                f"one of {sorted(AD_STRATEGIES)} or 'module:attr' ({HOW_TO_REGISTER})")
    for k, (query, inst) in enumerate(zip(queries, insts)):
        for i, (name, description) in enumerate(zip(query.advertisers, query.descriptions)):
            world.ledger.open(name, balance=to_minor(m["advertiser_budget"]))
            strategy = build_ad_strategy(strategies["overrides"].get(name, strategies["default"]))
            world.add(Advertiser(name, description, k, inst, i, strategy, platform=world.auctioneer_id))
    world.add(AdUser("user", asked(config), insts, interarrival=m["interarrival"],
                     platform=world.auctioneer_id), principal=True)
    if m["latency"] or m["jitter"] or m["loss"]:
        world.graph = star_graph(world.auctioneer_id, [a.id for a in world.agents if a.id != world.auctioneer_id],
                                 latency=m["latency"], jitter=m["jitter"], loss=m["loss"])
    world.drain_seconds = m["report_window"] + 2 * (m["latency"] + m["jitter"])


SCENARIO = Scenario(
    "ads", DEFAULTS, build, describe=describe, metrics=metrics, observers=observers,
    factories=(Factories("mechanism", AGGREGATIONS, SUPPLIED_PARAMS),), schema=SCHEMA,
)
