"""Mechanism benchmarks of ``llm-market bench``: microseconds per auction next to a baseline timed in the same process.

Wall-clock time is read here, outside any simulated run, only to time whole calls and runs.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from market.core.mechanisms.aggregation import mosaic, sample_shown


def _through_bus(seconds: Any, rounds: int, repeats: int, unit: str, baseline: str) -> dict[str, Any]:
    """Rounds per second of ``seconds(rounds, direct=False)`` (the market) against ``direct=True``,
    the two interleaved so that both see the same spells of a noisy machine."""
    t_market = t_direct = float("inf")
    for _ in range(repeats):
        t_market = min(t_market, seconds(rounds, False))
        t_direct = min(t_direct, seconds(rounds, True))
    return {
        "rounds": rounds,
        f"{unit}_per_s_through_bus": round(rounds / t_market),
        "baseline": baseline,
        f"baseline_{unit}_per_s": round(rounds / t_direct),
        "ratio_bus_to_direct": round(t_direct / t_market, 3),
    }


def _per_call_us(fns: tuple[Any, ...], calls: int, repeats: int) -> list[float]:
    """Best-of-``repeats`` microseconds per call of each ``fn()``, interleaved across functions."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t0) / calls)
    return [b * 1e6 for b in best]


def _market_seconds(rounds: int, direct: bool) -> float:
    """Wall seconds for ``rounds`` ads auctions on the bigram LM: the whole market (platform, 100 advertisers,
    user, bus, ledger), or the same candidate sampling, reward scoring and MOSAIC calls made directly."""
    from market.runtime.config import resolve
    from market.runtime.world import World
    from scenarios.ads import instances

    config, market = resolve("ads", ["market.lm=\"ngram\"", f"run.rounds={rounds}"])
    if not direct:
        world = World(config, 0)
        market.build(world, config)
        t0 = time.perf_counter()
        world.run()
        return time.perf_counter() - t0
    insts = instances(config, 0)
    rng = np.random.default_rng(0)
    m = config["market"]["candidates"]
    t0 = time.perf_counter()
    for k in range(rounds):
        inst = insts[k % len(insts)]
        ys = inst.sample_candidates(m, rng, True)
        out = mosaic(inst.rewards(ys), inst.log_ref(ys), inst.log_gen(ys, True), inst.tau)
        sample_shown(out.q, rng)
    return time.perf_counter() - t0


def bench_mosaic(quick: bool = False) -> dict[str, Any]:
    """One MOSAIC auction (allocation + offset payments) at n = 10, M = 20 vs a NumPy softmax of the M scores
    alone; and complete ads auctions per second through the bus vs the same work without the market."""
    rng = np.random.default_rng(0)
    n, m = 10, 20
    rewards = rng.normal(0.0, 1.0, (n, m))
    log_ref = rng.normal(-5.0, 1.0, m)
    log_gen = rng.normal(-5.0, 1.0, m)
    calls, repeats = (2000, 3) if quick else (20000, 5)

    def softmax() -> np.ndarray:
        s = rewards.sum(axis=0) + log_ref - log_gen
        e = np.exp(s - s.max())
        return e / e.sum()

    t_mosaic, t_softmax = _per_call_us((lambda: mosaic(rewards, log_ref, log_gen, 5.0), softmax), calls, repeats)
    market = _through_bus(_market_seconds, 200 if quick else 2000, 2 if quick else 3, "auctions",
                          "the same candidate sampling, reward scoring and MOSAIC calls without agents or bus")
    return {
        "benchmark": "mosaic",
        "python": sys.version.split()[0],
        "auction_n10_M20": {
            "mosaic_us_per_auction": round(t_mosaic, 2),
            "baseline": "NumPy softmax of the M scores alone (no validation, no payments)",
            "baseline_us": round(t_softmax, 2),
            "ratio_mosaic_to_softmax": round(t_mosaic / t_softmax, 2),
        },
        "market_ngram_n2_M20": market,
    }


def _procurement_seconds(rounds: int, direct: bool) -> float:
    """Wall seconds for ``rounds`` ROSA + TRCM-UCB procurement rounds at n = 10, d = 8: the whole market
    (auctioneer, providers, user, bus, ledger), or the same cost draws, select and update calls directly."""
    from market.runtime.config import resolve
    from market.runtime.world import World
    from scenarios.procurement import instance

    config, market = resolve("procurement", ["market.providers=10", "market.dim=8", f"run.rounds={rounds}"])
    if not direct:
        world = World(config, 0)
        market.build(world, config)
        t0 = time.perf_counter()
        world.run()
        return time.perf_counter() - t0
    inst = instance(config, 0)
    mech = inst.mechanism.build()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(rounds):
        x = inst.contexts(rng)
        bids = inst.priors[0].sample(rng, inst.n)
        out = mech.select(x, bids, rng)
        if out.winner is not None:
            mech.update(x, out, inst.quality.sample(out.winner, x, rng))
    return time.perf_counter() - t0


def bench_rosa(quick: bool = False) -> dict[str, Any]:
    """ROSA + TRCM-UCB select + update at n = 10, d = 8 vs a bare NumPy LinUCB argmax; and complete
    procurement rounds per second through the bus vs the same mechanism calls without the market."""
    from market.core.mechanisms.priors import UniformCost
    from market.core.mechanisms.reverse import build_mechanism

    n, d = 10, 8
    rng = np.random.default_rng(0)
    mech = build_mechanism("rosa-trcm-ucb", n=n, d=d, mu=0.01, priors=UniformCost(0.0, 1.0))
    xs = rng.uniform(0.0, 1.0, (256, d))
    bids = rng.uniform(0.0, 1.0, (256, n))
    coins = np.random.default_rng(1)
    k = [0]

    def select_update() -> None:
        i = k[0] = (k[0] + 1) & 255
        out = mech.select(xs[i], bids[i], coins)
        if out.winner is not None:
            mech.update(xs[i], out, 0.5)

    a_inv = np.broadcast_to(np.eye(d), (n, d, d)).copy()
    theta = rng.normal(size=(n, d))

    def bare_linucb() -> int:
        i = k[0] = (k[0] + 1) & 255
        x = xs[i]
        ax = a_inv @ x
        return int(np.argmax(theta @ x + np.sqrt(ax @ x) - 2.0 * bids[i]))

    calls, repeats = (3000, 3) if quick else (20000, 5)
    t_mech, t_bare = _per_call_us((select_update, bare_linucb), calls, repeats)
    market = _through_bus(_procurement_seconds, 500 if quick else 3000, 2 if quick else 3, "rounds",
                          "the same context, cost, select and update calls without agents or bus")
    return {
        "benchmark": "rosa",
        "python": sys.version.split()[0],
        "select_update_n10_d8": {
            "rosa_trcm_ucb_us": round(t_mech, 2),
            "baseline": "bare NumPy LinUCB scoring + argmax (no resampling, no payments, no update)",
            "baseline_us": round(t_bare, 2),
            "ratio_mechanism_to_bare": round(t_mech / t_bare, 2),
        },
        "market_n10_d8": market,
    }
