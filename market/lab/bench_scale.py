"""``llm-market bench scale``: what a full market round costs as users and providers grow.

Each point is a ``quickstart`` run with ROSA + TRCM-UCB (``mechanism.name=rosa-trcm-ucb``) through the bus,
event log on disk, measured in a fresh process of its own (so its peak resident memory is its own), and in
that same process the plain-asyncio sealed-bid round of ``market.lab.bench`` at the same number of
providers: the ratio of the two is what the market's runtime costs over the bare fan-out/fan-in, read on
the same machine at the same moment. Figures: rounds/s, wall seconds, peak resident memory, event-log bytes
per round. The users axis needs a scenario that takes ``market.users``: a point whose config refuses it is
reported as skipped with the refusal, not measured. The growth exponent is the least-squares slope of
log(seconds per round) against log(providers) (and log(users) where two or more user counts ran): 1.0 is
linear growth.

Wall-clock time is read here, outside any simulated run, only to time whole runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCENARIO = "quickstart"
MECHANISM = "rosa-trcm-ucb"
USERS = (1, 10, 100, 1000, 10000)
PROVIDERS = (10, 100, 1000)
QUICK_USERS = (1, 10)
QUICK_PROVIDERS = (10, 100)

# The child process: one point, timed against the plain-asyncio round in the same process, as one JSON line.
_CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from market.lab.bench import _sealed_rounds_plain
from market.runtime.config import ConfigError, resolve
from market.runtime.world import World

users, providers, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sets = [f"run.rounds={rounds}", "mechanism.name=" + sys.argv[4], f"market.providers={providers}"]
if users != 1:
    sets.append(f"market.users={users}")
try:
    config, market = resolve(sys.argv[5], sets)
except ConfigError as exc:
    print(json.dumps({"skipped": f"the scenario refuses this point: {exc}"}))
    sys.exit(0)
with tempfile.TemporaryDirectory() as d:
    out = Path(d) / "run"
    t0 = time.perf_counter()
    world = World(config, config["run"]["seed"], out)
    market.build(world, config)
    world.metrics.extend(market.observers(config, world.seed))
    t1 = time.perf_counter()
    summary = world.run()
    wall = time.perf_counter() - t1
    build = t1 - t0
    log_bytes = (out / "events.msgpack").stat().st_size
plain = _sealed_rounds_plain(providers, rounds)
print(json.dumps({"wall_s": wall, "build_s": build, "rounds_closed": summary["rounds"], "log_bytes": log_bytes,
                  "plain_s": plain, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _rounds_for(users: int, providers: int, quick: bool) -> int:
    """Enough rounds that the run, not its start-up, dominates, few enough for the point to take seconds."""
    budget = 4_000 if quick else 20_000  # provider-rounds per point
    return max(20, min(2_000, budget // providers))


def measure_point(users: int, providers: int, rounds: int, *, scenario: str = SCENARIO,
                  mechanism: str = MECHANISM) -> dict[str, Any]:
    """One point of the grid in a fresh process: its figures, or ``{"skipped": why}``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    res = subprocess.run([sys.executable, "-c", _CHILD, str(users), str(providers), str(rounds), mechanism, scenario],
                         capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"bench scale: the point users={users}, providers={providers} failed: "
                           f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    raw = json.loads(res.stdout.strip().splitlines()[-1])
    point: dict[str, Any] = {"users": users, "providers": providers, "rounds": rounds}
    if "skipped" in raw:
        point["skipped"] = raw["skipped"]
        return point
    closed = raw["rounds_closed"]
    point.update({
        "rounds_closed": closed,
        "wall_s": round(raw["wall_s"], 3),  # the run; building the world is apart (build_s)
        "build_s": round(raw["build_s"], 3),
        "rounds_per_s": round(closed / raw["wall_s"], 1),
        "us_per_round": round(raw["wall_s"] / closed * 1e6, 1),
        "peak_rss_mb": round(raw["peak_rss_mb"], 1),
        "log_bytes_per_round": round(raw["log_bytes"] / closed, 1),
        "plain_asyncio_us_per_round": round(raw["plain_s"] / rounds * 1e6, 1),
        "ratio_market_to_plain": round((raw["plain_s"] / rounds) / (raw["wall_s"] / closed), 4),
    })
    return point


def growth_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) on log(x); None with fewer than two distinct x."""
    if len(set(xs)) < 2:
        return None
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, axis in zip(axes, ("providers", "users")):
        pts = [p for p in result[f"{axis}_axis"] if "skipped" not in p]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("microseconds per round")
        exp = result["growth_exponent"][axis]
        ax.set_title(f"{axis}: fitted exponent {exp:.2f}" if exp is not None else f"{axis}: fewer than 2 points ran")
        if pts:
            xs = [p[axis] for p in pts]
            ax.plot(xs, [p["us_per_round"] for p in pts], "o-", label="market round (ROSA + TRCM-UCB, bus, log)")
            ax.plot(xs, [p["plain_asyncio_us_per_round"] for p in pts], "s--", label="plain-asyncio sealed-bid round")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bench_scale(quick: bool = False, *, out: str | Path = "bench-scale", users: tuple[int, ...] | None = None,
                providers: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The providers axis (1 user) and the users axis (at the fewest providers); JSON and PNG in ``out``."""
    users = users or (QUICK_USERS if quick else USERS)
    providers = providers or (QUICK_PROVIDERS if quick else PROVIDERS)
    base_n = min(providers)
    prov_axis = [measure_point(1, n, _rounds_for(1, n, quick)) for n in providers]
    user_axis = [next(p for p in prov_axis if p["providers"] == base_n) if u == 1 else
                 measure_point(u, base_n, _rounds_for(u, base_n, quick)) for u in users]
    result: dict[str, Any] = {
        "benchmark": "scale", "scenario": SCENARIO, "mechanism": MECHANISM, "quick": quick,
        "providers_axis": prov_axis, "users_axis": user_axis,
        "skipped": [f"users={p['users']}, providers={p['providers']}: {p['skipped']}"
                    for p in prov_axis + user_axis if "skipped" in p],
        "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
    }
    exps: dict[str, float | None] = {}
    for axis, pts in (("providers", prov_axis), ("users", user_axis)):
        ran = [p for p in pts if "skipped" not in p]
        e = growth_exponent([p[axis] for p in ran], [p["us_per_round"] for p in ran])
        exps[axis] = None if e is None else round(e, 3)
    result["growth_exponent"] = exps
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, out / "scale.png")
    result["files"] = [str(out / "scale.json"), str(out / "scale.png")]
    return result
