"""Strategic-deviation experiments: a deviating profile against its truthful twin with common random numbers.

The world derives every agent's generator from (seed, agent id), so a profile and its twin differ only in
the deviators' strategy objects. Over many seeds the deviators' mean per-round utility gain gets a seeded
bootstrap 95% CI and a verdict. Two engines: ``market`` (the real runtime, the reference) and ``fast``
(the same scenario, mechanism and strategy objects in a plain loop, no bus; see ``play_fast``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from agents.providers import Provider
from agents.strategies import COALITIONS, BidFeedback
from agents.users import ProcurementUser
from market.auctioneer import ReverseAuctioneer
from market.config import ConfigError, resolve
from market.world import World

ENGINES = ("fast", "market")
TRACE_POINTS = 20


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run's outcome. utilities: total utility (payments - costs) per provider id; user: value - spend;
    trace: (TRACE_POINTS,) the first deviator's preferred multiplier along the run (fast engine only, else empty)."""

    utilities: dict[str, float]
    user: float
    rounds: int
    trace: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """Per-round gains with a bootstrap CI. gains: (seeds,) deviators' gain per seed, per round."""

    gain: float
    ci_low: float
    ci_high: float
    verdict: str
    others: float
    user: float
    seeds: int
    rounds: int
    gains: tuple[float, ...] = field(repr=False, default=())
    trace: tuple[float, ...] = ()


def bootstrap_ci(values: Sequence[float], seed: int = 0, resamples: int = 4000, level: float = 0.95) -> tuple[float, float]:
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
    config, builder = resolve(scenario, [*overrides, f"run.seed={seed}", f"run.rounds={rounds}"])
    world = World(config, seed, None)
    builder(world, config)
    return world


def play_fast(scenario: str, overrides: Sequence[str], seed: int, rounds: int, watch: str | None = None) -> RunResult:
    """The scenario's world, run as a plain loop: same mechanism, strategies, priors, quality and streams.

    It mirrors a run without link faults in which every provider bids in every round: the user draws a
    context, each provider draws its cost and bids, the mechanism selects, everyone learns, the winner's
    answer is rewarded and the mechanism updates. Money stays in floats (the ledger rounds to micro-credits).
    """
    world = build_world(scenario, overrides, seed, rounds)
    m = world.config.get("market", {})
    if m.get("latency") or m.get("jitter") or m.get("loss"):
        raise ConfigError("engine fast: market.latency/jitter/loss must be 0 (the fast engine has no bus)")
    auctioneer = next(a for a in world.agents if isinstance(a, ReverseAuctioneer))
    user = next(a for a in world.agents if isinstance(a, ProcurementUser))
    by_id = {a.id: a for a in world.agents if isinstance(a, Provider)}
    providers = [by_id[p] for p in auctioneer.providers]
    rngs = [world.rng(p.id) for p in providers]
    user_rng, mech_rng = world.rng(user.id), auctioneer.mechanism_rng
    mechanism, lo, hi = auctioneer.mechanism, auctioneer.lo, auctioneer.hi
    n = len(providers)
    utilities, value, spend = np.zeros(n), 0.0, 0.0
    watched = next((p.strategy for p in providers if p.id == watch), None)
    marks = set(np.linspace(0, user.queries - 1, TRACE_POINTS).astype(int).tolist()) if watched is not None else set()
    trace = []
    for t in range(user.queries):
        x = np.asarray(user.contexts(user_rng), dtype=float)
        costs = np.empty(n)
        bids = np.empty(n)
        for i, p in enumerate(providers):
            costs[i] = float(p.prior.sample(rngs[i], 1)[0])
            bids[i] = float(p.strategy.bid(costs[i], x, rngs[i]))
        present = (bids >= lo) & (bids <= hi)
        outcome = mechanism.select(x, bids, mech_rng, present) if present.any() else None
        winner = outcome.winner if outcome is not None else None
        for i, p in enumerate(providers):
            if present[i]:
                won = i == winner
                pay = float(outcome.payments[i]) if won else 0.0
                p.strategy.learn(BidFeedback(t, won, pay, float(costs[i]), float(bids[i])))
        if winner is not None:
            pay = float(outcome.payments[winner])
            utilities[winner] += pay - costs[winner]
            spend += pay
            reward = float(user.reward(winner, x, user_rng))
            value += reward
            mechanism.update(x, outcome, reward)
        if t in marks:
            trace.append(float(watched.multiplier))
    return RunResult({p.id: float(u) for p, u in zip(providers, utilities)}, value - spend, user.queries, tuple(trace))


def play_market(scenario: str, overrides: Sequence[str], seed: int, rounds: int, watch: str | None = None) -> RunResult:
    """The scenario through the real market (bus, auctioneer, ledger), writing no files."""
    from market.cli import run_scenario

    config, summary, _ = run_scenario(scenario, seed=seed, rounds=rounds, overrides=overrides, out=None)
    received, paid = summary["received"], summary["paid"]
    utilities = {
        p: (received.get(p, {}).get("payment", 0) - paid.get(p, {}).get("serving cost", 0)) / 1e6
        for p in summary["balances"] if p.startswith("provider-")
    }
    user = summary["feedback"]["reward_sum"] - paid.get("user", {}).get("payment", 0) / 1e6
    return RunResult(utilities, float(user), int(summary["rounds"]))


def _play(task: tuple[str, str, tuple[str, ...], int, int, str | None]) -> RunResult:
    engine, scenario, overrides, seed, rounds, watch = task
    return (play_fast if engine == "fast" else play_market)(scenario, overrides, seed, rounds, watch)


def run_tasks(tasks: Sequence[tuple], workers: int) -> list[RunResult]:
    """Run (engine, scenario, overrides, seed, rounds, watch) tasks, in a process pool when workers > 1."""
    if workers <= 1 or len(tasks) <= 1:
        return [_play(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_play, tasks, chunksize=max(1, len(tasks) // (4 * workers))))


def judge(twins: Sequence[RunResult], deviations: Sequence[RunResult], deviators: Sequence[str],
          bootstrap_seed: int = 0) -> Verdict:
    """The deviators' per-round gain over their truthful twins, seed by seed, with a bootstrap CI;
    plus the other providers' and the user's mean per-round change."""
    gains, others, users = [], [], []
    for twin, dev in zip(twins, deviations):
        per = max(dev.rounds, 1)
        gains.append(sum(dev.utilities[d] - twin.utilities[d] for d in deviators) / per)
        others.append(sum(dev.utilities[p] - twin.utilities[p] for p in dev.utilities if p not in deviators) / per)
        users.append((dev.user - twin.user) / per)
    low, high = bootstrap_ci(gains, bootstrap_seed)
    traces = [d.trace for d in deviations if d.trace]
    trace = tuple(np.mean(traces, axis=0).tolist()) if traces else ()
    return Verdict(float(np.mean(gains)), low, high, classify(low, high), float(np.mean(others)),
                   float(np.mean(users)), len(gains), deviations[0].rounds, tuple(gains), trace)


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
) -> Verdict:
    """Play ``strategy`` by ``deviator`` (and its coalition) against the all-truthful twin on seeds 0..seeds-1."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine: got {engine!r}, expected one of {ENGINES}")
    if seeds < 2:
        raise ConfigError(f"--seeds: got {seeds}, expected at least 2 (a confidence interval needs them)")
    providers = resolve(scenario, list(overrides))[0]["market"]["providers"]
    devs = deviators_for(strategy, deviator, providers)
    twin_sets = tuple(overrides)
    dev_sets = (*overrides, *profile_overrides(strategy, devs))
    tasks = [(engine, scenario, s, seed, rounds, devs[0]) for seed in range(seeds) for s in (twin_sets, dev_sets)]
    results = run_tasks(tasks, workers)
    return judge(results[0::2], results[1::2], devs)
