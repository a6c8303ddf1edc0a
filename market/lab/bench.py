"""Benchmarks of ``llm-market bench``: figures as JSON, each next to a baseline measured in the same process.

Wall-clock time is read here, outside any simulated run, only to time whole runs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from market.core.registry import Registry
from market.core.wire import Bid, CallForBids
from market.runtime.bus import Bus
from market.runtime.kernel import VirtualTimeLoop


def _timed_rounds(loop: asyncio.AbstractEventLoop, providers: list[Any], auctioneer: Any) -> float:
    """Start the provider coroutines, time the auctioneer's rounds, then stop everyone and close the loop."""

    async def main() -> float:
        tasks = [loop.create_task(p) for p in providers]
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        await auctioneer
        dt = time.perf_counter() - t0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return dt

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def _sealed_rounds_bus(n: int, rounds: int, dim: int = 8) -> float:
    """Seconds for ``rounds`` sealed-bid rounds through the real bus (MessagePack on every hop)."""
    loop = VirtualTimeLoop()
    bus = Bus(loop, np.random.default_rng(0), limit=None)  # the bus alone: rounds take no simulated time
    hub = bus.register("auctioneer")
    ports = [bus.register(f"p{i}", ("providers",)) for i in range(n)]
    context = tuple(float(i) / dim for i in range(dim))

    async def provider(port: Any, price: float) -> None:
        while True:
            env = await port.recv()
            port.send("auctioneer", Bid(env.msg.round, price))

    async def auctioneer() -> None:
        for r in range(rounds):
            hub.broadcast("providers", CallForBids(r, r, context, 1.0, "user"))
            best = None
            for _ in range(n):
                amount = (await hub.recv()).msg.amount
                if best is None or amount < best:
                    best = amount

    return _timed_rounds(loop, [provider(p, 0.1 + i / n) for i, p in enumerate(ports)], auctioneer())


def _sealed_rounds_plain(n: int, rounds: int, dim: int = 8) -> float:
    """The same fan-out/fan-in with dicts through ``asyncio.Queue`` on a stock event loop."""
    loop = asyncio.new_event_loop()
    hub: asyncio.Queue = asyncio.Queue()
    inboxes = [asyncio.Queue() for _ in range(n)]
    context = [float(i) / dim for i in range(dim)]

    async def provider(inbox: asyncio.Queue, price: float) -> None:
        while True:
            msg = await inbox.get()
            hub.put_nowait({"kind": "bid", "round": msg["round"], "amount": price})

    async def auctioneer() -> None:
        for r in range(rounds):
            msg = {"kind": "call_for_bids", "round": r, "query_id": r, "context": context,
                   "deadline": 1.0, "user": "user"}
            for q in inboxes:
                q.put_nowait(msg)
            best = None
            for _ in range(n):
                amount = (await hub.get())["amount"]
                if best is None or amount < best:
                    best = amount

    return _timed_rounds(loop, [provider(q, 0.1 + i / n) for i, q in enumerate(inboxes)], auctioneer())


def _interleaved_best(fns: tuple[Any, ...], repeats: int, *args: Any) -> list[float]:
    """Best-of-``repeats`` seconds of each function, runs interleaved so that both sides of a ratio
    see the same spells of a noisy machine."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], fn(*args))
    return best


def bench_bus(quick: bool = False) -> dict[str, Any]:
    repeats = 2 if quick else 5
    out: dict[str, Any] = {"benchmark": "bus", "python": sys.version.split()[0]}
    for n, rounds in ((10, 2000 if quick else 10000), (100, 200 if quick else 1000)):
        t_bus, t_plain = _interleaved_best((_sealed_rounds_bus, _sealed_rounds_plain), repeats, n, rounds)
        msgs = 2 * n * rounds  # n deliveries of the call for bids + n bids
        out[f"n={n}"] = {
            "rounds": rounds,
            "bus_rounds_per_s": round(rounds / t_bus),
            "bus_messages_per_s": round(msgs / t_bus),
            "plain_asyncio_rounds_per_s": round(rounds / t_plain),
            "plain_asyncio_messages_per_s": round(msgs / t_plain),
            "ratio_bus_to_plain": round(t_plain / t_bus, 3),
        }
    return out


def _peak_rss_mb(rounds: int) -> float:
    """Peak resident memory of a fresh process running quickstart for ``rounds`` rounds, log on disk."""
    with tempfile.TemporaryDirectory() as d:
        code = (
            "import resource, sys\n"
            "from market.runtime.run import run_scenario\n"
            f"run_scenario('quickstart', rounds={rounds}, out=__import__('pathlib').Path({str(Path(d) / 'run')!r}))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return round(int(res.stdout.strip().splitlines()[-1]) / 1024, 1)


def bench_memory(quick: bool = False) -> dict[str, Any]:
    sizes = (1000, 10000) if quick else (10_000, 100_000)
    return {"benchmark": "memory", "peak_rss_mb": {f"rounds={r}": _peak_rss_mb(r) for r in sizes}}


SWEEP_BENCH_SPEC = """
[sweep]
scenario = "quickstart"
seeds = {seeds}
metrics = ["user_utility"]
[fixed]
"run.rounds" = {rounds}
[grid]
"mechanism.name" = ["myerson", "pay-as-bid"]
"""


def _parallel_ceiling(loops: int) -> float:
    """What 2 processes get from this machine: the time of one pure-Python loop alone, doubled, over the
    wall time of two copies run at once (2.0 on two free cores; less when the cores are shared)."""
    code = f"x = 0\nfor i in range({loops}):\n    x += i\n"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    pair = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    for proc in pair:
        proc.wait()
    return 2 * alone / (time.perf_counter() - t0)


def bench_sweep(quick: bool = False) -> dict[str, Any]:
    """The same CPU-bound sweep (quickstart runs) with 1 and with 2 local workers, from a cold start
    (spawning the pool included), each into a fresh directory."""
    from market.lab.sweep import run_sweep

    seeds, rounds = (4, 600) if quick else (8, 3000)
    seconds = {}
    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "bench_sweep.toml"
        spec.write_text(SWEEP_BENCH_SPEC.format(seeds=seeds, rounds=rounds))
        for workers in (1, 2):
            t0 = time.perf_counter()
            result = run_sweep(spec, Path(d) / f"workers-{workers}", workers=workers)
            seconds[workers] = time.perf_counter() - t0
            if result.failed or result.done != 2 * seeds:
                raise RuntimeError(f"bench sweep: {result} with {workers} workers")
    ceiling = _parallel_ceiling(10_000_000 if quick else 30_000_000)
    return {
        "benchmark": "sweep", "tasks": 2 * seeds, "rounds_per_task": rounds,
        "seconds_1_worker": round(seconds[1], 2), "seconds_2_workers": round(seconds[2], 2),
        "speedup_2_to_1": round(seconds[1] / seconds[2], 2),
        "machine_parallel_ceiling": round(ceiling, 2),  # two independent processes, same measure
        # other processes competing for the cores lower the speed-up; this says how busy they were
        "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
    }


def _timed_run(rounds: int, out: Path | None, log_options: dict[str, Any]) -> tuple[float, float]:
    """(wall, CPU) seconds of one quickstart run of ``rounds`` rounds (checkpoint every 50) written to ``out``.
    CPU time is what the chain costs; wall time also holds fsync's wait for the disk."""
    from market.runtime.config import resolve
    from market.runtime.world import World

    config, market = resolve("quickstart", [f"run.rounds={rounds}", "run.checkpoint_every=50"])
    t0, c0 = time.perf_counter(), time.process_time()
    world = World(config, config["run"]["seed"], out, log_options=log_options)
    market.build(world, config)
    world.metrics.extend(market.observers(config, world.seed))
    world.run()
    return time.perf_counter() - t0, time.process_time() - c0


# What the integrity of the log costs: the hash chain and fsync (at each checkpoint and at the end)
# against the same log without them (the writer's bench-only options) and against no log at all.
_INTEGRITY_VARIANTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "chain_fsync": (True, {}),
    "chain_no_fsync": (True, {"_fsync": False}),
    "no_chain_no_fsync": (True, {"_chain": False, "_fsync": False}),
    "no_log": (False, {}),
}


def bench_integrity(quick: bool = False, *, rounds: int | None = None, repeats: int | None = None) -> dict[str, Any]:
    """What the log's integrity costs a run (``llm-market bench integrity``); ``rounds``/``repeats`` for tests."""
    rounds = rounds or (300 if quick else 800)
    repeats = repeats or (3 if quick else 5)
    wall = {name: float("inf") for name in _INTEGRITY_VARIANTS}
    cpu = dict(wall)
    size = 0
    with tempfile.TemporaryDirectory() as d:
        for rep in range(repeats):  # interleaved: every variant sees the same spells of a busy machine
            for name, (logged, options) in _INTEGRITY_VARIANTS.items():
                out = Path(d) / f"{name}-{rep}" if logged else None
                w, c = _timed_run(rounds, out, options)
                wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)
                if out is not None:
                    size = (out / "events.msgpack").stat().st_size

    def ratios(t: dict[str, float]) -> dict[str, Any]:
        base = t["no_chain_no_fsync"]
        return {
            "seconds": {name: round(v, 4) for name, v in t.items()},
            "chain_fsync_over_no_chain": round(t["chain_fsync"] / base, 3),
            "chain_only_over_no_chain": round(t["chain_no_fsync"] / base, 3),
            "chain_fsync_over_no_log": round(t["chain_fsync"] / t["no_log"], 3),
            "no_chain_over_no_log": round(base / t["no_log"], 3),
        }

    return {
        "benchmark": "integrity", "scenario": "quickstart", "rounds": rounds, "checkpoint_every": 50,
        "repeats": repeats, "log_bytes": size, "wall_best": ratios(wall), "cpu_best": ratios(cpu),
        "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
    }


def _fast_env_rate(mechanism: str, steps: int) -> dict[str, float]:
    """Steps/s of the fast market env (one deviator, quickstart: n = 5, d = 8) and, as its ceiling, rounds/s of
    the same mechanism's select and update with the same draws of contexts and rewards and no env around them.
    ``*_cpu``: the same per second of this process's CPU time (the machine may be shared)."""
    from market.lab.rl.engines import FastEngine

    env = FastEngine("quickstart", ("provider-0",), overrides=[f"mechanism.name={mechanism}"], rounds=steps + 1)
    actions = np.random.default_rng(0).uniform(-0.2, 0.4, (steps, 1))
    env.reset(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        env.step(a)
    env_s, env_c = time.perf_counter() - t0, time.process_time() - c0
    m = env.market
    mech, inst, bids, present = m.mechanism, m.instance, env.cost_rows[:steps], np.ones(env.cost_rows.shape[1], bool)
    t0 = time.perf_counter()
    for t in range(steps):
        x = inst.contexts(m.user_rng)
        outcome = mech.select(x, bids[t], m.mech_rng, present)
        if outcome.winner is not None:
            mech.update(x, outcome, float(inst.quality.sample(outcome.winner, x, m.user_rng)))
    mech_s = time.perf_counter() - t0
    return {"env_steps_per_s": round(steps / env_s, 1), "env_steps_per_cpu_s": round(steps / env_c, 1),
            "mechanism_rounds_per_s": round(steps / mech_s, 1), "env_over_mechanism": round(mech_s / env_s, 3)}


def _vector_env_rate(mechanism: str, batches: tuple[int, ...], rounds: int, episodes: int) -> dict[str, Any]:
    """Agent-steps/s of the vectorised fast env (``VectorFastEngine``: B markets, one deviator each) per batch size
    B, over ``episodes`` episodes of ``rounds`` rounds, resets included (a trainer resets every episode)."""
    from market.lab.rl.batched import VectorFastEngine

    rates: dict[str, Any] = {}
    for batch in batches:
        env = VectorFastEngine("quickstart", "provider-0", batch=batch, overrides=[f"mechanism.name={mechanism}"],
                               rounds=rounds)
        actions = np.random.default_rng(0).uniform(-0.2, 0.4, (rounds, batch))
        t0, c0 = time.perf_counter(), time.process_time()
        for episode in range(episodes):
            env.reset([episode * batch + b for b in range(batch)])
            for a in actions:
                env.step(a)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        steps = batch * rounds * episodes
        rates[str(batch)] = {"batched": env.batched, "steps_per_s": round(steps / wall, 1),
                             "steps_per_cpu_s": round(steps / cpu, 1)}
    best = max(rates, key=lambda b: rates[b]["steps_per_s"])
    return {"mechanism": mechanism, "rounds": rounds, "episodes": episodes, "batches": rates, "best_batch": int(best),
            "best_steps_per_s": rates[best]["steps_per_s"]}


def _ppo_rate(steps: int) -> dict[str, Any]:
    """Wall seconds of PPO training (``attack --method ppo``'s trainer, rosa-trcm-ucb, 400 rounds) for ``steps``
    steps on the vectorised env and on B ``MarketGymEnv`` copies in a DummyVecEnv; skipped without [rl]."""
    import importlib.util

    if importlib.util.find_spec("stable_baselines3") is None or importlib.util.find_spec("torch") is None:
        return {"skipped": "needs the [rl] extra: pip install 'llm-market-sim[rl]'"}
    import stable_baselines3  # noqa: F401 - imported before the clocks start: both timings leave the imports out
    import torch

    from market.lab.attackers import AttackSpec
    from market.lab.rl.ppo import train_policy
    from market.runtime.config import resolve

    spec = AttackSpec("quickstart", ("mechanism.name=rosa-trcm-ucb",), train_seeds=(100, 101, 102, 103), rounds=400)
    resolve(spec.scenario, spec.overrides)  # the first resolve imports the scenarios and plug-ins
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimiser imports torch's compiler (~5 s)
    out: dict[str, Any] = {"steps": steps}
    for name, vectorised in (("vectorised", True), ("dummy", False)):
        t0 = time.perf_counter()
        _, details = train_policy(spec, lambda *_: None, steps=steps, vectorised=vectorised)
        out[name] = {"n_envs": details["n_envs"], "seconds": round(time.perf_counter() - t0, 2),
                     "learn_seconds": details["seconds"]}
    out["dummy_over_vectorised"] = round(out["dummy"]["seconds"] / out["vectorised"]["seconds"], 3)
    return out


def _market_env_rate(rounds: int, repeats: int) -> dict[str, float]:
    """Rounds/s of the market env (one deviator bidding truthfully through the env), of ``llm-market run``
    (``run_scenario``, no files: with the scenario's metric observers) and of the bare world the env runs (built
    and run without observers), on the same quickstart scenario, best of ``repeats``, interleaved."""
    from market.lab.rl.engines import MarketEngine
    from market.runtime.config import resolve
    from market.runtime.run import run_scenario
    from market.runtime.world import World

    env_s, run_s, world_s = float("inf"), float("inf"), float("inf")
    zero = np.zeros(1)
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_scenario("quickstart", seed=0, rounds=rounds, overrides=["run.checkpoint_every=0"], out=None)
        run_s = min(run_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        config, market = resolve("quickstart", [f"run.rounds={rounds}", "run.checkpoint_every=0"])
        world = World(config, 0, None)
        market.build(world, config)
        world.run()
        world_s = min(world_s, time.perf_counter() - t0)
        env = MarketEngine("quickstart", ("provider-0",), overrides=["run.checkpoint_every=0"], rounds=rounds)
        t0 = time.perf_counter()
        env.reset(0)
        done = False
        while not done:
            done = env.step(zero)[2]
        env_s = min(env_s, time.perf_counter() - t0)
    return {"market_env_rounds_per_s": round(rounds / env_s, 1), "run_rounds_per_s": round(rounds / run_s, 1),
            "world_rounds_per_s": round(rounds / world_s, 1), "market_env_over_run": round(run_s / env_s, 3),
            "market_env_over_world": round(world_s / env_s, 3)}


def bench_env(quick: bool = False, *, steps: int | None = None, rounds: int | None = None,
              batches: tuple[int, ...] | None = None, vector_rounds: int | None = None,
              ppo_steps: int | None = None) -> dict[str, Any]:
    """The market envs' speed (``llm-market bench env``): the fast env's steps/s against its mechanism's own
    rounds/s, the vectorised fast env's agent-steps/s per batch size, the market env's rounds/s against
    ``llm-market run``'s (targets: 20,000 steps/s; 0.8x) and PPO's training time on the vectorised env against B
    single envs (50,000 steps; ``--quick``: 4,096; 0 skips it)."""
    steps = steps or (3000 if quick else 20000)
    rounds = rounds or (200 if quick else 1000)
    batches = batches or ((16, 64) if quick else (16, 64, 256))
    vector_rounds = vector_rounds or (100 if quick else 400)
    ppo_steps = (4096 if quick else 50_000) if ppo_steps is None else ppo_steps
    fast = {name: _fast_env_rate(name, steps) for name in ("myerson", "pay-as-bid", "rosa-trcm-ucb")}
    vector = _vector_env_rate("rosa-trcm-ucb", batches, vector_rounds, 2)
    return {
        "benchmark": "env", "scenario": "quickstart", "providers": 5, "dim": 8, "deviators": 1,
        "fast": {"steps": steps, **fast}, "vector": vector,
        "vector_over_fast": round(vector["best_steps_per_s"] / fast["rosa-trcm-ucb"]["env_steps_per_s"], 2),
        "market": {"rounds": rounds, **_market_env_rate(rounds, 2 if quick else 3)},
        "ppo": _ppo_rate(ppo_steps) if ppo_steps else {"skipped": "ppo_steps = 0"},
        "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
    }


BENCHMARKS: Registry[dict[str, Any]] = Registry("benchmark", {
    "env": bench_env,
    "integrity": bench_integrity,
    "bus": bench_bus,
    "memory": bench_memory,
    "sweep": bench_sweep,
    "rosa": "market.lab.bench_mechanisms:bench_rosa",
    "mosaic": "market.lab.bench_mechanisms:bench_mosaic",
    "scale": "market.lab.bench_scale:bench_scale",
    "lm": "market.lab.bench_lm:bench_lm",
})


def run(what: str, quick: bool = False, out: str | None = None) -> dict[str, Any]:
    """The benchmark registered as ``what``, as a JSON-ready dict; ``out``: where one that writes files
    (``scale``: JSON and PNG) puts them."""
    if out is not None:
        return BENCHMARKS.build(what, quick, out=out)
    return BENCHMARKS.build(what, quick)
