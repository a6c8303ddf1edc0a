"""``llm-market bench scale``: what a full market round costs as users and providers grow, and what the log takes.

Each point is a run of the ``crowd`` scenario (many users with Poisson arrivals, overlapping auctions, ROSA +
TRCM-UCB) through the bus with a compact event log on disk (``run.log = "compact"``), measured in a fresh
process of its own (so its peak resident memory is its own), and in that same process the plain-asyncio
sealed-bid round of ``market.lab.bench`` at the same number of providers: the ratio of the two is what the
market's runtime costs over the bare fan-out/fan-in, read on the same machine at the same moment. Figures:
rounds (auctions) per second, wall seconds, peak resident memory, event-log bytes per round.

The providers axis runs ``PROVIDERS_USERS`` users with every provider invited to every auction, so that its
cost per round is what n bidders cost. The users axis runs ``USERS_PROVIDERS`` providers and at least as many
auctions as users, so that every user's start-up (its task, its first draw) is inside the run and paid for
by the rounds it takes part in. The growth exponent is the least-squares slope of log(seconds per round) on
log(size): 1.0 is linear growth, 0 is none.

``log_sizes`` sets the two log formats side by side: bytes per round of the same quickstart run (ROSA +
TRCM-UCB) written plain and compact, and what 10^6 rounds would take in each.

Wall-clock time is read here, outside any simulated run, only to time whole runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCENARIO = "crowd"
MECHANISM = "rosa-trcm-ucb"
USERS = (1, 10, 100, 1000, 10000)
PROVIDERS = (10, 100, 1000)
QUICK_USERS = (1, 10, 100)
QUICK_PROVIDERS = (10, 100)
PROVIDERS_USERS = 100  # users on the providers axis
USERS_PROVIDERS = 10  # providers on the users axis
LOG_SIZE_PROVIDERS = (5, 10, 100)  # quickstart runs written in both formats
PROJECTED_ROUNDS = 10**6

# The child process: one point, timed against the plain-asyncio round in the same process, as one JSON line.
_CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from market.lab.bench import _sealed_rounds_plain
from market.runtime.config import ConfigError, resolve
from market.runtime.world import World

users, providers, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sets = [f"run.rounds={rounds}", "mechanism.name=" + sys.argv[4], f"market.providers={providers}",
        f"market.users={users}", "run.log=" + sys.argv[6], *sys.argv[7:]]
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
    """Enough rounds that the run, not its start-up, dominates (at least one per user), few enough for the
    point to take seconds: a budget of provider-rounds, every provider bidding in every round."""
    budget = 4_000 if quick else 20_000
    return max(20, min(2_000, budget // providers), min(users, 1_000 if quick else 10_000))


def measure_point(users: int, providers: int, rounds: int, *, scenario: str = SCENARIO,
                  mechanism: str = MECHANISM, log: str = "compact", sets: tuple[str, ...] = ()) -> dict[str, Any]:
    """One point of the grid in a fresh process: its figures, or ``{"skipped": why}``. ``sets``: more
    ``--set`` overrides (e.g. ``market.max_bidders=10``)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    res = subprocess.run([sys.executable, "-c", _CHILD, str(users), str(providers), str(rounds), mechanism, scenario,
                          log, *sets], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"bench scale: the point users={users}, providers={providers} failed: "
                           f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    raw = json.loads(res.stdout.strip().splitlines()[-1])
    point: dict[str, Any] = {"users": users, "providers": providers, "rounds": rounds, "log": log}
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


def log_size(providers: int, rounds: int) -> dict[str, Any]:
    """Bytes per round of one quickstart run (ROSA + TRCM-UCB, ``providers`` providers) written plain and
    compact, the same records in both, and what ``PROJECTED_ROUNDS`` rounds would take."""
    from market.runtime.run import run_scenario

    row: dict[str, Any] = {"providers": providers, "rounds": rounds}
    with tempfile.TemporaryDirectory() as d:
        for log in ("plain", "compact"):
            out = Path(d) / log
            run_scenario("quickstart", rounds=rounds, out=out, overrides=[
                f"mechanism.name={MECHANISM}", f"market.providers={providers}", f"run.log={log}"])
            per_round = (out / "events.msgpack").stat().st_size / rounds
            row[f"{log}_bytes_per_round"] = round(per_round, 1)
            row[f"{log}_mb_per_million_rounds"] = round(per_round * PROJECTED_ROUNDS / 1e6, 1)
    row["ratio_compact_to_plain"] = round(row["compact_bytes_per_round"] / row["plain_bytes_per_round"], 4)
    return row


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

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
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
            ax.plot(xs, [p["us_per_round"] for p in pts], "o-", label="market round (crowd, ROSA + TRCM-UCB, bus, log)")
            ax.plot(xs, [p["plain_asyncio_us_per_round"] for p in pts], "s--", label="plain-asyncio sealed-bid round")
            ax.legend(fontsize=7)
    ax = axes[2]
    rows = result["log_sizes"]
    if rows:
        xs = [r["providers"] for r in rows]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.plot(xs, [r["plain_bytes_per_round"] for r in rows], "o-", label="plain log")
        ax.plot(xs, [r["compact_bytes_per_round"] for r in rows], "s-", label="compact log")
        ax.set_xlabel("providers (quickstart)")
        ax.set_ylabel("event-log bytes per round")
        ax.set_title("log size per round")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bench_scale(quick: bool = False, *, out: str | Path = "bench-scale", users: tuple[int, ...] | None = None,
                providers: tuple[int, ...] | None = None, log_sizes: tuple[int, ...] | None = None,
                rounds: int | None = None) -> dict[str, Any]:
    """The providers axis (``PROVIDERS_USERS`` users), the users axis (``USERS_PROVIDERS`` providers) and the
    log sizes of both formats; JSON and PNG in ``out``. ``rounds`` fixes every point's rounds (tests)."""
    users = users or (QUICK_USERS if quick else USERS)
    providers = providers or (QUICK_PROVIDERS if quick else PROVIDERS)
    log_sizes = LOG_SIZE_PROVIDERS if log_sizes is None else log_sizes
    prov_axis = [measure_point(PROVIDERS_USERS, n, rounds or _rounds_for(PROVIDERS_USERS, n, quick))
                 for n in providers]
    user_axis = [measure_point(u, USERS_PROVIDERS, rounds or _rounds_for(u, USERS_PROVIDERS, quick)) for u in users]
    sizes = [log_size(n, rounds or max(50, (100 if quick else 1000) * 10 // max(n, 10))) for n in log_sizes]
    result: dict[str, Any] = {
        "benchmark": "scale", "scenario": SCENARIO, "mechanism": MECHANISM, "log": "compact", "quick": quick,
        "providers_axis_users": PROVIDERS_USERS, "users_axis_providers": USERS_PROVIDERS,
        "providers_axis": prov_axis, "users_axis": user_axis, "log_sizes": sizes,
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
