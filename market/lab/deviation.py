"""Strategic-deviation experiments: a deviating profile against its truthful twin with common random numbers.

The world derives every agent's generator from (seed, agent id), so a profile and its twin differ only in
the deviators' strategy objects. Over many seeds the deviators' mean per-round utility gain gets a seeded
bootstrap 95% CI and a verdict. Two engines: ``market`` (the real runtime, the reference) and ``fast``
(the scenario's ``MarketInstance``, mechanism and strategy objects in a plain loop, no bus; see ``FastMarket``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.providers import provider_strategies
from agents.strategies import COALITIONS, Bidder, BidFeedback
from market.core.ledger import to_units
from market.core.mechanisms.aggregation import AGGREGATIONS
from market.core.mechanisms.base import BidRange
from market.core.seeding import derive_rng
from market.runtime.config import ConfigError, resolve
from market.runtime.world import World

ENGINES = ("fast", "market")
TRACE_POINTS = 20


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run's outcome. utilities: total utility per participant id (providers: payments - costs;
    advertisers: expected reward - payment); user: value - spend (ads: expected log pi_ref of the reply);
    platform: revenue kept by the platform (ads); trace: (TRACE_POINTS,) the first deviator's preferred
    multiplier or factor along the run (floor-1 engines only, else empty); spend: the user's payments and
    served: the queries it was served (procurement)."""

    utilities: dict[str, float]
    user: float
    rounds: int
    trace: tuple[float, ...] = ()
    platform: float = 0.0
    spend: float = 0.0
    served: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Per-round gains with a bootstrap CI. gains: (seeds,) deviators' gain per seed, per round."""

    gain: float
    ci_low: float
    ci_high: float
    verdict: str
    others: float
    user: float
    platform: float
    seeds: int
    rounds: int
    gains: tuple[float, ...] = field(repr=False, default=())
    trace: tuple[float, ...] = ()
    profile: str = ""  # the deviating profile, e.g. "provider-0=shade"
    twin: str = ""  # the twin it is compared with, e.g. "provider-0=truthful"


def bootstrap_ci(
    values: Sequence[float], seed: int = 0, resamples: int = 4000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values``, from a generator seeded with ``seed``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci: values is empty; expected at least one value")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (resamples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def classify(ci_low: float, ci_high: float) -> str:
    """'profitable' if the CI is above 0, 'loses' if below, else 'not distinguishable from 0'."""
    if ci_low > 0:
        return "profitable"
    if ci_high < 0:
        return "loses"
    return "not distinguishable from 0"


def deviators_for(strategy: str, deviator: str | None, providers: int) -> tuple[str, ...]:
    """The providers that play ``strategy``: ``deviator`` (default provider-0), or a coalition from it."""
    first = int((deviator or "provider-0").removeprefix("provider-"))
    size = COALITIONS.get(strategy, 1)
    if first + size > providers:
        raise ConfigError(f"--deviator: provider-{first} with a coalition of {size} needs {first + size} providers, "
                          f"the market has {providers}")
    return tuple(f"provider-{first + k}" for k in range(size))


def profile_overrides(strategy: str, deviators: Sequence[str]) -> list[str]:
    """--set items making ``deviators`` play ``strategy`` (a coalition gets its members as a parameter)."""
    sets = [f"strategies.overrides.{d}={strategy}" for d in deviators]
    if strategy in COALITIONS:
        members = ", ".join(d.removeprefix("provider-") for d in deviators)
        sets.append(f"strategies.params.{strategy}.members=[{members}]")
    return sets


def build_world(scenario: str, overrides: Sequence[str], seed: int, rounds: int) -> World:
    config, market = resolve(scenario, [*overrides, f"run.seed={seed}", f"run.rounds={rounds}"])
    world = World(config, seed, None)
    market.build(world, config)
    return world


class FastMarket:
    """The scenario's ``MarketInstance`` played without a world: the mechanism, strategies, priors, quality
    and random streams a run of it has.

    ``round(t)`` plays one round as a run without link faults in which every provider bids: the user draws a
    context, each provider draws its cost and bids, the mechanism selects, everyone learns, the winner's
    answer is rewarded and the mechanism updates. ``draw()`` alone draws a round without playing it. Rounds are
    numbered as the market numbers them, 0, 1, ...: each strategy is driven by a ``Bidder``, as in a provider,
    so it sees the same round index and history of its own outcomes as it would there.
    """

    def __init__(self, scenario: str, overrides: Sequence[str], seed: int, rounds: int, *,
                 resolved: tuple[dict[str, Any], Any] | None = None, bidders: bool = True) -> None:
        """``resolved``: the (config, market) of ``resolve(scenario, [*overrides, f"run.rounds={rounds}"])``, resolved
        once for many seeds (the market env resets every episode, and resolving costs more than a short episode);
        this run's seed goes into a copy of its ``run`` table. ``bidders=False``: no strategy objects are built
        (``bidders`` is empty; ``draw`` and ``round`` need them), for a loop that bids for every provider itself
        (the vectorised env, whose other providers are known to be truthful); the streams are the same."""
        if resolved is None:
            config, market = resolve(scenario, [*overrides, f"run.seed={seed}", f"run.rounds={rounds}"])
        else:
            config, market = resolved
            config = {**config, "run": {**config["run"], "seed": int(seed)}}
        if market.instance is None:
            raise ConfigError(f"engine fast: scenario {config['scenario']['name']!r} ({market.name} market) has no "
                              "MarketInstance; expected a procurement market (or --engine market)")
        m = config.get("market", {})
        if m.get("latency") or m.get("jitter") or m.get("loss"):
            raise ConfigError("engine fast: market.latency/jitter/loss must be 0 (the fast engine has no bus)")
        self.config = config
        self.instance = inst = market.instance(config, seed)
        self.mechanism = inst.mechanism.build()
        # The streams a run gives these agents (the world derives each from the seed and the agent's id)
        # and the auctioneer's mechanism coins, so the fast engine draws what the market would.
        self.ids = inst.providers
        self.bidders = ([Bidder(s) for s in provider_strategies(config["strategies"], inst.providers, self.mechanism)]
                        if bidders else [])
        self.next_round = 0  # the index of the round draw() draws next
        self.rngs = [derive_rng(seed, p) for p in inst.providers]
        self.user_rng, self.mech_rng = derive_rng(seed, inst.user), derive_rng(seed, "mechanism")
        self.bid_range = BidRange.of(self.mechanism)
        self.queries = int(config["run"]["rounds"])
        self.n = inst.n

    @property
    def strategies(self) -> list[Any]:
        """Each provider's strategy object (replace one by replacing its ``Bidder`` in ``bidders``)."""
        return [b.strategy for b in self.bidders]

    def draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(context, costs, bids) of the next round (``next_round``), each provider bidding through its strategy."""
        t = self.next_round
        self.next_round += 1
        x = np.asarray(self.instance.contexts(self.user_rng), dtype=float)
        costs, bids = np.empty(self.n), np.empty(self.n)
        for i, (prior, bidder) in enumerate(zip(self.instance.priors, self.bidders)):
            costs[i] = float(prior.sample(self.rngs[i], 1)[0])
            bids[i] = bidder.bid(costs[i], x, t, self.rngs[i])
        return x, costs, bids

    def round(self, t: int) -> tuple[int | None, float, float, np.ndarray]:
        """(winner, payment, the user's reward, costs) of round t, the next one (``next_round``)."""
        if t != self.next_round:
            raise ValueError(f"round: got t = {t}, expected the next round, {self.next_round} (rounds are played "
                             "in order)")
        x, costs, bids = self.draw()
        present = self.bid_range.accepted(bids)
        outcome = self.mechanism.select(x, bids, self.mech_rng, present) if present.any() else None
        winner = outcome.winner if outcome is not None else None
        for i, bidder in enumerate(self.bidders):
            if present[i]:
                won = i == winner
                pay = float(outcome.payments[i]) if won else 0.0
                bidder.learn(BidFeedback(t, won, pay, float(costs[i]), float(bids[i])))
        if winner is None:
            return None, 0.0, 0.0, costs
        reward = float(self.instance.quality.sample(winner, x, self.user_rng))
        self.mechanism.update(x, outcome, reward)
        return winner, float(outcome.payments[winner]), reward, costs

    def warm(self, rounds: int) -> None:
        """Play rounds 0 .. rounds - 1 (the warm-up before frozen rounds)."""
        for t in range(rounds):
            self.round(t)


def deviator_market(scenario: str, overrides: Sequence[str], seed: int, rounds: int,
                    deviator: str) -> tuple[FastMarket, int]:
    """(the market built for a run of ``rounds`` rounds, the deviator's index); refused, naming ``--deviator``,
    when the deviator is not one of the market's providers. A caller checks what it needs of the mechanism, then
    plays its warm-up (``FastMarket.warm``) and the frozen rounds; the world is built for the whole run (warm-up +
    frozen rounds) because ROSA's default mu is T^-1/2."""
    market = FastMarket(scenario, overrides, seed, rounds)
    ids = list(market.ids)
    if deviator not in ids:
        raise ConfigError(f"--deviator: got {deviator!r}, expected one of {ids}")
    return market, ids.index(deviator)


def play_fast(scenario: str, overrides: Sequence[str], seed: int, rounds: int, watch: str | None = None) -> RunResult:
    """The scenario's world, run as a plain loop (``FastMarket``). Money stays in floats (the ledger
    rounds to micro-credits)."""
    market = FastMarket(scenario, overrides, seed, rounds)
    queries = market.queries
    utilities, value, spend, served = np.zeros(market.n), 0.0, 0.0, 0
    watched = next((s for p, s in zip(market.ids, market.strategies) if p == watch), None)
    marks = set(np.linspace(0, queries - 1, TRACE_POINTS).astype(int).tolist()) if watched is not None else set()
    trace = []
    for t in range(queries):
        winner, pay, reward, costs = market.round(t)
        if winner is not None:
            utilities[winner] += pay - costs[winner]
            spend += pay
            value += reward
            served += 1
        if t in marks:
            trace.append(float(watched.multiplier))
    return RunResult({p: float(u) for p, u in zip(market.ids, utilities)}, value - spend, queries, tuple(trace),
                     spend=spend, served=served)


def play_market(scenario: str, overrides: Sequence[str], seed: int, rounds: int, watch: str | None = None) -> RunResult:
    """The scenario through the real market (bus, auctioneer, ledger), writing no files."""
    from market.runtime.run import run_scenario

    config, summary, _ = run_scenario(scenario, seed=seed, rounds=rounds, overrides=overrides, out=None)
    received, paid = summary["received"], summary["paid"]
    utilities = {
        p: to_units(received.get(p, {}).get("payment", 0) - paid.get(p, {}).get("serving cost", 0))
        for p in summary["balances"] if p.startswith("provider-")
    }
    spend = to_units(paid.get("user", {}).get("payment", 0))
    user = summary["feedback"]["reward_sum"] - spend
    return RunResult(utilities, float(user), int(summary["rounds"]), spend=float(spend),
                     served=int(sum(summary["wins"].values())))


def play_horizon(strategy: str, seed: int, rounds: int, mu: float = 0.3, providers: int = 5, dim: int = 8,
                 params: dict[str, Any] | None = None) -> RunResult:
    """Reading H through HorizonROSA (separated elimination): each provider draws one cost
    U[0, 1] for the horizon and bids once; provider-0 plays ``strategy``, the others are truthful.

    The procurement scenario draws a cost per query, which one bid per horizon cannot follow, hence this
    floor-1 loop; the instance is drawn like the scenario's (``LinearQuality.draw``: theta rows with L1 norm 2,
    U[0, 1]^d contexts, Gaussian noise 0.1). A learner gets a single decision here, so only static strategies
    are meaningful. params: the strategy's parameters (none by default).
    mu is large by default because the horizon draws one coin per provider: the rare resampled horizons
    carry the bonus that makes shading unprofitable, and a few dozen seeds must contain some of them.
    """
    from agents.strategies import BidderFacts, build_strategy
    from market.core.mechanisms.reverse import build_mechanism
    from market.core.quality import LinearQuality

    world = derive_rng(seed, "horizon-instance")
    quality = LinearQuality.draw(world, providers, dim, 2.0, "gaussian", 0.1)
    costs = world.uniform(0.0, 1.0, providers)
    contexts = world.uniform(0.0, 1.0, (rounds, dim))
    rewards = quality.table(contexts, world)
    mechanism = build_mechanism("horizon-rosa", n=providers, d=dim, mu=mu)
    bids = costs.copy()
    facts = BidderFacts(0, providers, mechanism.cost_floor, mechanism.cost_cap, mu)
    deviant = Bidder(build_strategy(strategy, facts, **(params or {})))
    bids[0] = deviant.bid(costs[0], contexts[0], 0, derive_rng(seed, "provider-0"))
    mech_rng = derive_rng(seed, "mechanism")
    utilities, user = np.zeros(providers), 0.0
    for t in range(rounds):
        outcome = mechanism.select(contexts[t], bids, mech_rng)
        if outcome.winner is not None:
            w = outcome.winner
            utilities[w] += outcome.payments[w] - costs[w]
            user += rewards[t, w] - outcome.payments[w]
            mechanism.update(contexts[t], outcome, float(rewards[t, w]))
    return RunResult({f"provider-{i}": float(u) for i, u in enumerate(utilities)}, float(user), rounds)


def play_ads(mechanism: str, strategy: str, seed: int, rounds: int, overrides: Sequence[str] = ()) -> RunResult:
    """The ads scenario's instances as a floor-1 loop: auctions in the scenario's order (query t mod Q, each once
    per proposal); advertiser 0 of each query plays ``strategy`` (built with its ``strategies.params.<strategy>``
    table from ``overrides``, if any), the others are truthful.

    MOSAIC variants: M candidates from the scenario's proposal, conditioned on the descriptions as the platform
    conditions it (``AdInstance.pulls``: the deviator's ``describe`` output if the platform would accept it,
    none otherwise), drawn from the same mechanism stream; utilities are interim,
    E_q[r_i] - p_i. One strategy object plays every query's advertiser 0 (a learner learns across queries).
    token-auction (Duetting et al.): per round a step with n = 2 agents' next-token laws (Dirichlet(1) over
    8 tokens) and values v ~ U[0.5, 2]; the strategy reports a bid for v (negative bids become 0); utility
    v_i (-1/2 ||q - p_i||_1) - z_i. user: E_q[log pi_ref] (MOSAIC) or 0; platform: revenue.
    """
    from agents.ad_strategies import AdFeedback, Reporter
    from market.core.mechanisms.aggregation import build_aggregation, sample_shown
    from market.core.mechanisms.token_auction import token_auction
    from market.runtime.platform import description_refusal
    from scenarios.ads import ad_strategy, asked, instances, proposals

    if mechanism not in AGGREGATIONS:
        raise ConfigError(f"mechanism.name: {AGGREGATIONS.unknown(mechanism)}")
    config = resolve("ads", [*overrides, f"run.rounds={rounds}"])[0]
    deviant = ad_strategy(config["strategies"], strategy)  # with its strategies.params table, if any
    reporter = Reporter(deviant)
    dev_rng, draws = derive_rng(seed, "advertiser-0"), derive_rng(seed, "mechanism")
    trace_at: set[int] = set()
    if hasattr(deviant, "alpha"):
        trace_at = set(np.linspace(0, rounds - 1, TRACE_POINTS).astype(int).tolist())
    trace: list[float] = []
    if mechanism == "token-auction":
        utilities, revenue = np.zeros(2), 0.0
        for t in range(rounds):
            p = draws.dirichlet(np.ones(8), 2)
            v = draws.uniform(0.5, 2.0, 2)
            bids = v.copy()
            bids[0] = max(float(reporter.report(v[:1], t, dev_rng)[0]), 0.0)
            step = token_auction(p, bids)
            u = v * (-0.5 * np.abs(step.q[None, :] - p).sum(axis=1)) - step.payments
            utilities += u
            revenue += float(step.payments.sum())
            reporter.learn(AdFeedback(t, v[:1], bids[:1], float(u[0] + step.payments[0]), float(step.payments[0])))
            if t in trace_at:
                trace.append(float(deviant.alpha))
        return RunResult({"advertiser-0": float(utilities[0]), "advertiser-1": float(utilities[1])}, 0.0, rounds,
                         tuple(trace), revenue)
    m = config["market"]
    insts = instances(config, seed)
    auction = build_aggregation(mechanism, **config["mechanism"]["params"])
    arms = proposals(config)
    pulls = []
    for inst in insts:
        written = deviant.describe(inst.query.advertisers[0], inst.query.descriptions[0])
        accepted = written if description_refusal(written) is None else ""
        pulls.append(inst.pulls((accepted, *inst.query.descriptions[1:])))
    utilities, user, revenue = np.zeros(insts[0].n), 0.0, 0.0
    order = asked(config)
    for t, qid in enumerate(order):
        inst, context_aware = insts[qid], arms[t % len(arms)] == "context"
        replies = inst.sample_candidates(m["candidates"], draws, context_aware, pulls=pulls[qid])
        true = inst.rewards(replies)
        reports = true.copy()
        reports[0] = reporter.report(true[0], t, dev_rng)
        log_ref = inst.log_ref(replies)
        out = auction(reports, log_ref, inst.log_gen(replies, context_aware, pulls=pulls[qid]), tau=inst.tau)
        utilities += true @ out.q - out.payments
        user += float(out.q @ log_ref)
        revenue += float(out.payments.sum())
        shown = sample_shown(out.q, draws)
        reporter.learn(AdFeedback(t, true[0], reports[0], float(true[0, shown]), float(out.payments[0])))
        if t in trace_at:
            trace.append(float(deviant.alpha))
    return RunResult({f"advertiser-{i}": float(u) for i, u in enumerate(utilities)}, user, len(order), tuple(trace),
                     revenue)


def play_ads_market(mechanism: str, strategy: str, seed: int, rounds: int, overrides: Sequence[str] = ()) -> RunResult:
    """The ads scenario through the real market (bus, platform, ledger), writing no files: advertiser 0 of every
    query plays ``strategy`` (``strategies.overrides``), the others are truthful.

    The quantities of ``play_ads``, from the run's log records (``scenarios.ads.PositionMeter``): interim
    utilities E_q[r_i] - p_i with true rewards and the payments as the ledger settled them (micro-credits),
    the user's E_q[log pi_ref], the platform's revenue. Each query's advertiser 0 is its own agent with its own
    strategy object and random stream: without link faults static strategies give ``play_ads``'s figures up to
    the micro-credit; a learner learns per query here and across queries there (and no trace is kept).
    """
    from market.data import ad_queries
    from market.runtime.platform import REWARD_AUCTIONS
    from scenarios.ads import PositionMeter

    if mechanism not in REWARD_AUCTIONS:
        raise ConfigError(f"mechanism: got {mechanism!r}, expected one of {REWARD_AUCTIONS} in the market engine "
                          "(the platform collects reward reports; the token auction runs in the fast engine)")
    queries = resolve("ads", list(overrides))[0]["market"]["queries"]
    sets = [*overrides, f"mechanism.name={mechanism}",
            *(f"strategies.overrides.{q.advertisers[0]}={strategy}" for q in ad_queries()[:queries])]
    world = build_world("ads", sets, seed, rounds)
    meter = PositionMeter(world.config, seed, world.auctioneer_id)
    world.metrics.append(meter)
    world.run()
    return RunResult({f"advertiser-{i}": float(u) for i, u in enumerate(meter.utility)}, meter.user, meter.rounds,
                     (), meter.revenue)


def _play(task: tuple) -> RunResult:
    engine, *args = task
    return {"fast": play_fast, "market": play_market, "horizon": play_horizon, "ads": play_ads,
            "ads-market": play_ads_market}[engine](*args)


def run_tasks(tasks: Sequence[tuple], workers: int) -> list[RunResult]:
    """Run (engine, scenario, overrides, seed, rounds, watch) tasks, in a process pool when workers > 1."""
    if workers <= 1 or len(tasks) <= 1:
        return [_play(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_play, tasks, chunksize=max(1, len(tasks) // (4 * workers))))


def judge(twins: Sequence[RunResult], deviations: Sequence[RunResult], deviators: Sequence[str],
          bootstrap_seed: int = 0, profile: str = "", twin_profile: str = "") -> Verdict:
    """The deviators' per-round gain over their truthful twins, seed by seed, with a bootstrap CI;
    plus the other providers' and the user's mean per-round change."""
    gains, others, users, platforms = [], [], [], []
    for twin, dev in zip(twins, deviations):
        per = max(dev.rounds, 1)
        gains.append(sum(dev.utilities[d] - twin.utilities[d] for d in deviators) / per)
        others.append(sum(dev.utilities[p] - twin.utilities[p] for p in dev.utilities if p not in deviators) / per)
        users.append((dev.user - twin.user) / per)
        platforms.append((dev.platform - twin.platform) / per)
    low, high = bootstrap_ci(gains, bootstrap_seed)
    traces = [d.trace for d in deviations if d.trace]
    trace = tuple(np.mean(traces, axis=0).tolist()) if traces else ()
    return Verdict(float(np.mean(gains)), low, high, classify(low, high), float(np.mean(others)),
                   float(np.mean(users)), float(np.mean(platforms)), len(gains), deviations[0].rounds,
                   tuple(gains), trace, profile, twin_profile)


def checked_seeds(seed_list: Sequence[int]) -> tuple[int, ...]:
    """``seed_list`` as a tuple of distinct integers >= 0; a ConfigError naming the first that is not."""
    out: list[int] = []
    for s in seed_list:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ConfigError(f"seed_list: got {s!r}, expected integers >= 0")
        if int(s) in out:
            raise ConfigError(f"seed_list: seed {int(s)} is listed twice, expected distinct seeds")
        out.append(int(s))
    return tuple(out)


def deviate(
    scenario: str,
    strategy: str,
    *,
    deviator: str | None = None,
    seeds: int = 20,
    rounds: int = 1000,
    overrides: Sequence[str] = (),
    engine: str = "fast",
    workers: int = 1,
    seed_list: Sequence[int] | None = None,
) -> Verdict:
    """Play ``strategy`` by ``deviator`` (and its coalition) against its truthful twin on seeds 0..seeds-1, or on
    ``seed_list`` when given (e.g. held-out seeds an attack never trained on; ``seeds`` is then ignored).

    The twin is the same profile with every deviator set to ``truthful``, whatever the scenario or the
    overrides gave them; the other participants keep their strategies in both."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine: got {engine!r}, expected one of {ENGINES}")
    run_seeds = range(seeds) if seed_list is None else checked_seeds(seed_list)
    if seed_list is None and seeds < 2:
        raise ConfigError(f"--seeds: got {seeds}, expected at least 2 (a confidence interval needs them)")
    if len(run_seeds) < 2:
        raise ConfigError(f"seed_list: got {len(run_seeds)} seeds, expected at least 2 (a confidence interval "
                          "needs them)")
    config, market = resolve(scenario, list(overrides))
    if market.name == "ads":
        # advertiser 0 of every query deviates, in the floor-1 loop (fast) or through the platform (market)
        if deviator not in (None, "advertiser-0"):
            raise ConfigError(f"--deviator: got {deviator!r}; in the ad market advertiser-0 (of every query) deviates")
        mechanism = config["mechanism"]["name"]
        play = "ads" if engine == "fast" else "ads-market"
        tasks = [(play, mechanism, name, seed, rounds, tuple(overrides))
                 for seed in run_seeds for name in ("truthful", strategy)]
        results = run_tasks(tasks, workers)
        return judge(results[0::2], results[1::2], ["advertiser-0"], profile=f"advertiser-0={strategy}",
                     twin_profile="advertiser-0=truthful")
    devs = deviators_for(strategy, deviator, config["market"]["providers"])
    # The twin sets every deviator to truthful explicitly: a scenario (or --set) that already gives a
    # deviator a strategy must not leak it into the profile it is compared with.
    twin_sets = (*overrides, *profile_overrides("truthful", devs))
    dev_sets = (*overrides, *profile_overrides(strategy, devs))
    tasks = [(engine, scenario, s, seed, rounds, devs[0]) for seed in run_seeds for s in (twin_sets, dev_sets)]
    results = run_tasks(tasks, workers)
    return judge(results[0::2], results[1::2], devs, profile=" ".join(f"{d}={strategy}" for d in devs),
                 twin_profile=" ".join(f"{d}=truthful" for d in devs))


def write_outputs(verdicts: dict[str, Verdict], out_dir: Path) -> None:
    """deviation.csv (one row per strategy), gains.png (gain with its CI) and, for learners,
    multipliers.png (the preferred multiplier along the run, averaged over seeds)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "deviation.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "gain", "ci_low", "ci_high", "verdict", "others", "user", "platform", "seeds",
                    "rounds", "final_multiplier"])
        for name, v in verdicts.items():
            w.writerow([name, f"{v.gain:.6f}", f"{v.ci_low:.6f}", f"{v.ci_high:.6f}", v.verdict, f"{v.others:.6f}",
                        f"{v.user:.6f}", f"{v.platform:.6f}", v.seeds, v.rounds,
                        f"{v.trace[-1]:.3f}" if v.trace else ""])
    names = list(verdicts)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 4))
    gains = np.array([verdicts[k].gain for k in names])
    err = np.array([[verdicts[k].gain - verdicts[k].ci_low for k in names],
                    [verdicts[k].ci_high - verdicts[k].gain for k in names]])
    ax.bar(range(len(names)), gains, yerr=err, capsize=4, color="tab:gray")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("deviator's gain per round (95% CI)")
    fig.tight_layout()
    fig.savefig(out_dir / "gains.png", dpi=120)
    plt.close(fig)
    traced = {k: v.trace for k, v in verdicts.items() if v.trace}
    if traced:
        fig, ax = plt.subplots(figsize=(7, 4))
        for k, trace in traced.items():
            ax.plot(np.linspace(0, 1, len(trace)), trace, label=k)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xlabel("fraction of the run")
        ax.set_ylabel("preferred multiplier (1 = truthful)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "multipliers.png", dpi=120)
        plt.close(fig)


def format_verdicts(verdicts: dict[str, Verdict]) -> str:
    rows = [f"{'strategy':<18}{'gain':>10}  {'95% CI':<22}{'verdict':<28}{'others':>9}{'user':>9}{'platform':>9}"
            f"{'multiplier':>11}"]
    for name, v in verdicts.items():
        ci = f"[{v.ci_low:+.4f}, {v.ci_high:+.4f}]"
        mult = f"{v.trace[-1]:.2f}" if v.trace else "-"
        rows.append(f"{name:<18}{v.gain:>+10.4f}  {ci:<22}{v.verdict:<28}{v.others:>+9.4f}{v.user:>+9.4f}"
                    f"{v.platform:>+9.4f}{mult:>11}")
    profiles = sorted({(v.profile, v.twin) for v in verdicts.values() if v.profile})
    rows += [f"profile {p}  against twin {t}" for p, t in profiles]
    return "\n".join(rows)
