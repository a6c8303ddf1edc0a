"""The procurement market (``SCENARIO``): a user buys answers from LLM providers by reverse auction.

``quickstart`` is the built-in default: 1 user, 5 truthful providers with private per-query costs
and linear context-dependent quality, the Myerson-optimal auction with known qualities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.hostile import add_hostiles
from agents.providers import Provider, provider_strategies
from agents.strategies import STRATEGIES
from agents.users import ProcurementUser
from market.core.instance import MarketInstance, MechanismSpec, Quality
from market.core.ledger import to_minor, to_units
from market.core.mechanisms.base import MechanismError
from market.core.mechanisms.priors import CostPrior, CostPriors, UniformCost
from market.core.mechanisms.reverse import MECHANISMS
from market.core.quality import NOISES, LinearQuality, ReplayQuality
from market.core.seeding import derive_rng
from market.data import llm_prices, mmlu_correctness
from market.runtime.auctioneer import ReverseAuctioneer
from market.runtime.config import ConfigError, require
from market.runtime.faults import DEFAULTS as FAULT_DEFAULTS
from market.runtime.faults import LINK_KEYS, LINK_RULES, check_agents, link_graph, max_route_delay, parse_faults
from market.runtime.records import MessageSent, Record, RoundClosed
from market.runtime.scenario import Factories, Scenario
from market.runtime.schema import CREDITS, DURATION, MAX_SCALE, MAX_SECONDS, Choice, Int, Real, Registered
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

# Each key's range (market/runtime/schema.py; run.seed, run.rounds and run.checkpoint_every are common).
SCHEMA = {
    # 256 providers x d^2 floats per provider's learner (ROSA) stays within a few hundred MB at d = 512;
    # contexts travel as vectors of at most 4096 entries (market/core/wire.py), which d = 5000 broke
    "market.providers": Int(1, 256),
    "market.dim": Int(1, 512),
    "market.interarrival": DURATION,
    "market.bid_window": DURATION,
    "market.feedback_timeout": DURATION,
    "market.rate_limit": Real(0.0, MAX_SCALE),  # 0 = no limit
    "market.rate_burst": Real(0.0, MAX_SCALE),  # at least 1 with a rate: checked by build
    "market.user_budget": CREDITS,
    **{f"market.{k}": LINK_RULES[k] for k in ("latency", "jitter", "loss", "copies")},
    "quality.model": Choice("linear", "mmlu"),
    "quality.noise": Choice(*NOISES),
    "quality.scale": Real(0.0, MAX_SCALE),
    "quality.value_scale": Real(0.0, MAX_SCALE),
    "quality.value_per_correct": Real(0.0, MAX_SCALE),
    "quality.embedding_dim": Int(0, 512),  # 0 = one-hot subjects
    "costs.c_lo": Real(0.0, MAX_SCALE),
    "costs.c_cap": Real(0.0, MAX_SCALE, lo_open=True),
    "costs.prompt_tokens": Int(0, 10_000_000),
    "costs.answer_tokens": Int(0, 10_000_000),
    "costs.spread": Real(0.0, 1.0, hi_open=True),
    "strategies.default": Registered(STRATEGIES),
    **{f"faults.{k}": LINK_RULES[k] for k in LINK_KEYS},
    # hostile.agents: names checked by agents/hostile.py's add_hostiles, which names the bad entry's index
    # a hostile agent attacks every period: shorter than 10 ms it could stop the clock late in a long run
    "hostile.period": Real(0.01, MAX_SECONDS),
    "hostile.flood": Int(0, 10_000),  # frames per attack of the flooder
}
# Frames hostile agents may send per round (agents x frames per attack x attacks per interarrival): the
# hostile scenario sends 30 per round; the bound keeps a run's work proportional to its rounds.
MAX_HOSTILE_FRAMES_PER_ROUND = 10_000


# The instance stream's key from before streams had names (kept: the golden runs' qualities come from it).
INSTANCE_STREAM = 0x7E7A

# The two models RouteLLM's MMLU table scores, and their list prices' names in market/data/llm_prices.csv.
MMLU_PRICE_NAMES = ("together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")


# The keywords of a mechanism's factory that the market fills in from the instance (mechanism_spec).
SUPPLIED_PARAMS = frozenset({"n", "d", "priors", "theta"})


def instance(config: dict[str, Any], seed: int) -> MarketInstance:
    """Linear: theta (n, d) with ||theta_i||_1 = value_scale, costs U[c_lo, c_cap], x ~ U[0, 1]^d.
    MMLU: two real models, contexts are question subjects, costs priced from list prices."""
    m, q, c = config["market"], config["quality"], config["costs"]
    if q["model"] == "linear":
        d = m["dim"]
        quality = LinearQuality.draw(derive_rng(seed, INSTANCE_STREAM), m["providers"], d, q["value_scale"],
                                     q["noise"], q["scale"])
        prior = UniformCost(c["c_lo"], c["c_cap"])
        priors = (prior,) * m["providers"]
        return MarketInstance(
            tuple(f"provider-{i}" for i in range(m["providers"])),
            priors,
            quality,
            lambda rng: rng.uniform(0.0, 1.0, d),
            d,
            mechanism_spec(config, quality, priors, d),
        )
    require(q["model"] == "mmlu", "quality.model", q["model"], "'linear' or 'mmlu'")
    replay = _ScaledReplay(ReplayQuality(mmlu_correctness(), dim=q["embedding_dim"] or None), q["value_per_correct"])
    prices = {row["model"]: row for row in llm_prices()}
    priors = []
    for name in MMLU_PRICE_NAMES:
        row = prices[name]
        list_price = (c["prompt_tokens"] * row["input_cost_per_token"]
                      + c["answer_tokens"] * row["output_cost_per_token"])
        priors.append(UniformCost((1 - c["spread"]) * list_price, (1 + c["spread"]) * list_price))
    counts = np.array([len(x) for x in replay.replay.correct], dtype=float)
    weights = counts / counts.sum()
    embedding = replay.replay.embedding
    return MarketInstance(
        tuple(replay.replay.MODELS),
        tuple(priors),
        replay,
        lambda rng: embedding[rng.choice(len(weights), p=weights)],
        embedding.shape[1],
        mechanism_spec(config, replay, tuple(priors), embedding.shape[1]),
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

    def __init__(self, inst: MarketInstance) -> None:
        self.inst = inst
        self.index = {p: i for i, p in enumerate(inst.providers)}
        self.priors = CostPriors.of(list(inst.priors), inst.n)
        self._contexts: dict[int, np.ndarray] = {}
        self._bids: dict[int, list[float]] = {}
        self.regret = 0.0
        self.rounds = 0
        self.oracle_hits = 0
        self.paid_rounds = 0
        self._pay_mean = 0.0
        self._pay_m2 = 0.0

    def observe(self, rec: Record) -> None:
        if isinstance(rec, MessageSent):
            if rec.kind == "query":
                q = rec.message()
                x = np.asarray(q.context)
                if x.shape == (self.inst.dim,):  # another size (sent by a hostile agent) would raise below
                    self._contexts[q.query_id] = x
            elif rec.kind == "bid" and rec.src in self.index:
                b = rec.message()
                book = self._bids.get(b.round)
                if book is None:  # a plain list per round, one array when it closes: no NumPy call per bid
                    book = self._bids[b.round] = [math.nan] * self.inst.n
                i = self.index[rec.src]
                if book[i] != book[i]:  # the first bid counts (NaN: none yet)
                    book[i] = b.amount
        elif isinstance(rec, RoundClosed):
            x = self._contexts.pop(rec.query_id, None)
            book = self._bids.pop(rec.round, None)
            if x is None:
                return
            bids = np.array(book) if book is not None else None
            self.rounds += 1
            if bids is not None:
                # bids are finite (the wire's money range), so this is nan_to_num(bids, nan=0.0) at a fifth of its cost
                missing = np.isnan(bids)
                surplus = self.inst.quality.mean(x) - self.priors.virtual_cost(np.where(missing, 0.0, bids))
                surplus[missing] = -np.inf
            else:
                surplus = np.full(self.inst.n, -np.inf)
            best = int(np.argmax(surplus))
            opt = max(0.0, float(surplus[best]))
            won = self.index.get(rec.winner)
            alg = float(surplus[won]) if won is not None else 0.0
            self.regret += opt - alg
            self.oracle_hits += (won == best) if opt > 0 else (won is None)
            if won is not None:
                pay = to_units(rec.payments_minor[won])
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


def mechanism_spec(config: dict[str, Any], quality: Quality, priors: tuple[CostPrior, ...], dim: int) -> MechanismSpec:
    """The mechanism named in the config. Myerson knows the qualities (linear model only); learners
    get (n, d) and ROSA's mu defaults to T^-1/2, the rate that balances learning and resampling regret."""
    name, params = config["mechanism"]["name"], dict(config["mechanism"]["params"])
    if name == "myerson":
        theta = getattr(quality, "theta", None)
        require(theta is not None, "mechanism.name", name, "a learning mechanism: Myerson needs known linear qualities")
        return MechanismSpec(name, {"theta": theta, "priors": list(priors), **params})
    if "rosa" in name:  # T >= 2: mu = 1 (T = 0 or 1) is no resampling probability
        params.setdefault("mu", 1.0 / np.sqrt(max(config["run"]["rounds"], 2)))
    return MechanismSpec(name, {"n": len(priors), "d": dim, "priors": list(priors), **params})


def describe(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """The run as a table: per provider wins, payments and utility; the user's spend and value."""
    received, paid = summary["received"], summary["paid"]
    providers = sorted(a for a in summary["balances"] if a not in ("user", "external"))
    w = max([len("provider")] + [len(p) for p in providers]) + 2
    rows = [f"{'provider':<{w}}{'wins':>7}{'payments':>12}{'costs':>12}{'utility':>12}"]
    for p in providers:
        pay = to_units(received.get(p, {}).get("payment", 0))
        cost = to_units(paid.get(p, {}).get("serving cost", 0))
        rows.append(f"{p:<{w}}{summary['wins'].get(p, 0):>7}{pay:>12.3f}{cost:>12.3f}{pay - cost:>12.3f}")
    spend = to_units(paid.get("user", {}).get("payment", 0))
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
    spend = to_units(paid.get("user", {}).get("payment", 0))
    value = summary["feedback"]["reward_sum"]
    rounds = summary["rounds"]
    out = {
        "user_utility": value - spend,
        "user_spend": spend,
        "user_value": value,
        "served_fraction": (rounds - summary["unsold"]) / rounds if rounds else 0.0,
    }
    for p in instance(config, config["run"]["seed"]).providers:
        pay = to_units(received.get(p, {}).get("payment", 0))
        out[f"provider_utility.{p}"] = pay - to_units(paid.get(p, {}).get("serving cost", 0))
    return out


def hostile_frames_per_round(config: dict[str, Any]) -> float:
    """At most how many frames the hostile agents send per round: every agent attacks once a period, the
    flooder with ``flood`` frames, and a round lasts ``interarrival`` simulated seconds."""
    h = config["hostile"]
    per_attack = sum(h["flood"] if name == "flooder" else 1 for name in h["agents"])
    return per_attack * (config["market"]["interarrival"] / h["period"] + 1.0)


def build(world: World, config: dict[str, Any]) -> None:
    m = config["market"]
    frames = hostile_frames_per_round(config)
    require(frames <= MAX_HOSTILE_FRAMES_PER_ROUND, "hostile.period", config["hostile"]["period"],
            f"a period that keeps the hostile agents under {MAX_HOSTILE_FRAMES_PER_ROUND} frames per round with "
            f"hostile.flood = {config['hostile']['flood']} and market.interarrival = {m['interarrival']} "
            f"(got {frames:.3g})")
    require(m["rate_limit"] == 0 or m["rate_burst"] >= 1, "market.rate_burst", m["rate_burst"],
            f"at least 1 frame with market.rate_limit = {m['rate_limit']} (0 turns the limit off)")
    inst = instance(config, world.seed)
    try:
        mechanism = inst.mechanism.build()
    except MechanismError as err:  # a value of mechanism.params the mechanism refuses
        raise ConfigError(f"mechanism.params: {err}") from None

    world.ledger.open(inst.user, balance=to_minor(m["user_budget"]))
    auctioneer = ReverseAuctioneer(
        world.auctioneer_id, mechanism, inst.providers, world.ledger, world.record, world.rng("mechanism"),
        bid_window=m["bid_window"], feedback_timeout=m["feedback_timeout"],
        users=(inst.user,), rate_limit=m["rate_limit"], rate_burst=m["rate_burst"],
    )
    world.add(auctioneer)
    strategies = provider_strategies(config["strategies"], inst.providers, mechanism)
    for pid, prior, strategy in zip(inst.providers, inst.priors, strategies):
        world.ledger.open(pid, overdraft=None)
        world.add(Provider(pid, prior, world.wallet(pid), strategy))
    world.add(
        ProcurementUser(
            inst.user, config["run"]["rounds"], inst.providers, inst.quality.sample, inst.contexts,
            interarrival=m["interarrival"],
        ),
        principal=True,
    )
    add_hostiles(world, config["hostile"], inst.providers)
    wire(world, config)


def wire(world: World, config: dict[str, Any]) -> None:
    """The network of a star market whose agents are all added: the links (``market.latency``, ``jitter``,
    ``loss``, ``copies``), the ``faults`` section's partitions and crashes, and the time the run drains after
    its last query (the bid window plus the slowest route)."""
    m = config["market"]
    faults = parse_faults(config["faults"])
    spokes = [a.id for a in world.agents if a.id != world.auctioneer_id]
    check_agents(faults, [world.auctioneer_id, *spokes], world.auctioneer_id)
    base = {"latency": m["latency"], "jitter": m["jitter"], "loss": m["loss"], "copies": m["copies"]}
    if m["latency"] or m["jitter"] or m["loss"] or faults.network:
        world.graph = link_graph(faults, world.auctioneer_id, spokes, base)
        world.partitions = faults.partitions
    world.crashes = faults.crashes
    world.drain_seconds = m["bid_window"] + max_route_delay(world.graph)


SCENARIO = Scenario(
    "procurement", DEFAULTS, build, describe=describe, metrics=metrics, observers=observers,
    factories=(Factories("mechanism", MECHANISMS, SUPPLIED_PARAMS),), instance=instance, schema=SCHEMA,
)
