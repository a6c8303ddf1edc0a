"""Sweeps: one scenario run over a grid of parameters x seeds, on a process pool or a Ray cluster.
Each task writes one result file, named after everything its result depends on; a re-run skips the
files that exist, so a killed sweep resumes where it stopped and failed tasks are retried.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from market import __version__
from market.runtime.config import ConfigError, load_toml, resolve

log = structlog.get_logger("llm-market.sweep")

SPEC_TABLES = ("sweep", "fixed", "grid", "zip")
SWEEP_KEYS = {"scenario": str, "seeds": int, "root_seed": int, "metrics": list}

# Summary tables keyed by agent or message kind: which keys appear depends on what happened in the
# run, so any key is a valid metric path and an absent one reads as a zero count.
COUNTER_TABLES = frozenset({"wins", "messages_by_kind", "rejects", "balances", "received", "paid"})


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A parsed sweep file. ``grid`` keys are crossed; ``zipped`` keys vary together, row by row."""

    scenario: str
    seeds: int
    root_seed: int
    metrics: tuple[str, ...]
    fixed: tuple[tuple[str, Any], ...]
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    zipped: tuple[tuple[str, tuple[Any, ...]], ...]

    @property
    def swept_keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.grid) + tuple(k for k, _ in self.zipped)

    def points(self) -> Iterator[tuple[tuple[str, Any], ...]]:
        """Grid points in order, each as ((key, value), ...) over ``swept_keys``; generated lazily."""
        grid_keys = [k for k, _ in self.grid]
        zip_keys = [k for k, _ in self.zipped]
        rows = list(zip(*(v for _, v in self.zipped))) if self.zipped else [()]
        for combo in itertools.product(*(v for _, v in self.grid)):
            for row in rows:
                yield tuple(zip(grid_keys, combo)) + tuple(zip(zip_keys, row))


@dataclass(frozen=True, slots=True)
class Task:
    """One run of a sweep: a grid point and a seed. ``name`` is its result file's stem."""

    name: str
    scenario: str
    fixed: tuple[tuple[str, Any], ...]
    point: tuple[tuple[str, Any], ...]
    seed_index: int
    seed: int
    metrics: tuple[str, ...]

    def overrides(self) -> list[str]:
        return [f"{k}={toml_literal(v)}" for k, v in self.fixed + self.point]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What a sweep did: tasks run now, skipped as already finished, and failed (of those run)."""

    done: int
    skipped: int
    failed: int
    wall_seconds: float


# -- the spec ---------------------------------------------------------------------------------


def task_seed(root_seed: int, seed_index: int) -> int:
    """The run seed of seed index ``seed_index``: the child ``SeedSequence(root_seed).spawn(...)[i]``.

    It depends on (root seed, seed index) only, never on the grid position, so adding grid points or
    seeds changes no existing task, and every grid point sees the same seeds (common random numbers).
    """
    return int(np.random.SeedSequence(root_seed, spawn_key=(seed_index,)).generate_state(1)[0])


def toml_literal(value: Any) -> str:
    """``value`` as a TOML value, for ``--set key=value`` overrides."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_literal(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"sweep: cannot pass {value!r} as a config value")


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"market": {"providers": [3]}}`` and ``{"market.providers": [3]}`` both give one dotted key."""
    out: list[tuple[str, Any]] = []
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, f"{key}."))
        else:
            out.append((key, v))
    return out


def parse_spec(raw: dict[str, Any]) -> SweepSpec:
    """Check a sweep file's structure and types; every error names the key."""
    for table in raw:
        if table not in SPEC_TABLES:
            raise ConfigError(f"{table}: unknown table; expected one of {list(SPEC_TABLES)}")
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict):
        raise ConfigError("sweep: missing table [sweep] (scenario, seeds, root_seed, metrics)")
    for key, value in sweep.items():
        if key not in SWEEP_KEYS:
            raise ConfigError(f"sweep.{key}: unknown key; known keys: {sorted(SWEEP_KEYS)}")
        want = SWEEP_KEYS[key]
        if not isinstance(value, want) or isinstance(value, bool):
            raise ConfigError(f"sweep.{key}: got {value!r}, expected {want.__name__}")
    for key in ("scenario", "metrics"):
        if key not in sweep:
            raise ConfigError(f"sweep.{key}: missing")
    seeds, root_seed = sweep.get("seeds", 1), sweep.get("root_seed", 0)
    if seeds < 1:
        raise ConfigError(f"sweep.seeds: got {seeds!r}, expected at least 1")
    if root_seed < 0:
        raise ConfigError(f"sweep.root_seed: got {root_seed!r}, expected a non-negative integer")
    metrics = sweep["metrics"]
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ConfigError(f"sweep.metrics: got {metrics!r}, expected a non-empty list of metric names")
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"sweep.metrics: got {metrics!r}, a metric is named twice")

    for table in ("fixed", "grid", "zip"):
        if table in raw and not isinstance(raw[table], dict):
            raise ConfigError(f"{table}: got {raw[table]!r}, expected a table of dotted config keys")
    fixed = _flatten(raw.get("fixed", {}))
    grid = _flatten(raw.get("grid", {}))
    zipped = _flatten(raw.get("zip", {}))
    for table, entries in (("grid", grid), ("zip", zipped)):
        for key, values in entries:
            if not isinstance(values, list):
                raise ConfigError(f"{table}.{key}: got {values!r}, expected a list of values")
            if not values:
                raise ConfigError(f"{table}.{key}: empty list, expected at least one value")
    if zipped and len({len(v) for _, v in zipped}) > 1:
        lengths = {k: len(v) for k, v in zipped}
        raise ConfigError(f"zip: lists of different lengths {lengths}; zipped keys vary together")
    if not grid and not zipped:
        raise ConfigError("grid: no swept key; expected at least one key with a list of values in [grid] or [zip]")
    seen: dict[str, str] = {}
    for table, entries in (("fixed", fixed), ("grid", grid), ("zip", zipped)):
        for key, _ in entries:
            if key in ("run.seed", "run") or key.startswith("run.seed."):
                raise ConfigError(f"{table}.{key}: the sweep sets run.seed from sweep.root_seed and sweep.seeds")
            if key in seen:
                raise ConfigError(f"{table}.{key}: also set in [{seen[key]}]")
            seen[key] = table
    return SweepSpec(
        scenario=sweep["scenario"], seeds=seeds, root_seed=root_seed, metrics=tuple(metrics),
        fixed=tuple(fixed),
        grid=tuple((k, tuple(v)) for k, v in grid),
        zipped=tuple((k, tuple(v)) for k, v in zipped),
    )


def load_spec(path: Path) -> SweepSpec:
    """Read and check a sweep file: structure, every swept value against the scenario, the metrics."""
    spec = parse_spec(load_toml(Path(path)))
    check_spec(spec)
    return spec


def check_spec(spec: SweepSpec) -> None:
    """Refuse what would fail in every task: unknown scenario, bad keys or values, unknown metrics.

    Each swept value is checked on its own against the scenario's defaults (not every combination:
    a grid may be large); a probe run of the first point with zero rounds gives the summary's shape
    and the scenario's metric names.
    """
    fixed = [f"{k}={toml_literal(v)}" for k, v in spec.fixed]
    resolve(spec.scenario, fixed)
    for table, entries in (("grid", spec.grid), ("zip", spec.zipped)):
        for key, values in entries:
            for value in values:
                try:
                    resolve(spec.scenario, fixed + [f"{key}={toml_literal(value)}"])
                except ConfigError as exc:
                    raise ConfigError(f"{table}.{key}: value {value!r} refused: {exc}") from None
    from market.runtime.run import run_scenario

    first = next(spec.points())
    overrides = fixed + [f"{k}={toml_literal(v)}" for k, v in first]
    config, summary, market = run_scenario(spec.scenario, seed=task_seed(spec.root_seed, 0), rounds=0,
                                           overrides=overrides)
    named = market.metrics(summary, config)
    for metric in spec.metrics:
        if metric in named or _summary_path_known(summary, metric):
            continue
        known = sorted(named) + sorted(_summary_paths(summary))
        raise ConfigError(f"sweep.metrics: unknown metric {metric!r}; known: {', '.join(known)}")


def _summary_path_known(summary: dict[str, Any], path: str) -> bool:
    parts = path.split(".")
    if parts[0] in COUNTER_TABLES:
        return len(parts) > 1
    node: Any = summary
    for p in parts:
        if not isinstance(node, dict) or p not in node:
            return False
        node = node[p]
    return isinstance(node, (int, float))


def _summary_paths(summary: dict[str, Any]) -> list[str]:
    out = []
    for key, value in summary.items():
        if key in COUNTER_TABLES:
            out.append(f"{key}.<name>")
        elif isinstance(value, dict):
            out.extend(f"{key}.{p}" for p in _summary_paths(value))
        elif isinstance(value, (int, float)):
            out.append(key)
    return out


def tasks(spec: SweepSpec) -> Iterator[Task]:
    """All tasks, point by point, seed by seed; lazily, so memory does not grow with the grid."""
    for point in spec.points():
        for i in range(spec.seeds):
            seed = task_seed(spec.root_seed, i)
            fixed = sorted(spec.fixed, key=lambda kv: kv[0])  # the order of [fixed] does not matter
            identity = json.dumps([spec.scenario, fixed, point, seed, spec.metrics], sort_keys=True)
            digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
            yield Task(f"{digest}-seed{i}", spec.scenario, spec.fixed, point, i, seed, spec.metrics)


# -- one task ----------------------------------------------------------------------------------


def read_metric(summary: dict[str, Any], named: dict[str, float], metric: str) -> float:
    """A metric of a run: a scenario metric by name, or a dotted path into the summary."""
    if metric in named:
        return float(named[metric])
    parts = metric.split(".")
    node: Any = summary
    for i, p in enumerate(parts):
        if not isinstance(node, dict):
            raise KeyError(f"metric {metric!r}: {'.'.join(parts[:i])} is not a table")
        if p not in node:
            if parts[0] in COUNTER_TABLES:
                return 0.0
            raise KeyError(f"metric {metric!r}: no {p!r} in {'.'.join(parts[:i]) or 'the summary'}")
        node = node[p]
    if not isinstance(node, (int, float)):
        raise KeyError(f"metric {metric!r}: got a table, expected a number")
    return float(node)


def run_task(task: Task) -> tuple[str, str, str]:
    """Run one task; returns (name, "done" or "failed", the file's JSON text). Never raises on a
    failing run: the error and the config go into the failed file and the sweep goes on."""
    from market.runtime.run import run_scenario

    record: dict[str, Any] = {
        "scenario": task.scenario,
        "fixed": dict(task.fixed),
        "point": [list(kv) for kv in task.point],
        "seed_index": task.seed_index,
        "seed": task.seed,
        "package_version": __version__,
    }
    try:
        config, summary, market = run_scenario(task.scenario, seed=task.seed, overrides=task.overrides())
        named = market.metrics(summary, config)
        record["metrics"] = {m: read_metric(summary, named, m) for m in task.metrics}
        status = "done"
    except Exception as exc:  # any failure of one run is reported, never fatal to the sweep
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
        status = "failed"
    return task.name, status, json.dumps(record, indent=2, sort_keys=True) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one (a killed sweep leaves no torn file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- engines -----------------------------------------------------------------------------------


class LocalEngine:
    """A process pool with the spawn context: workers start clean, as they would on another machine."""

    def __init__(self, workers: int) -> None:
        self.pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, task: Task) -> Any:
        return self.pool.submit(run_task, task)

    def wait(self, pending: set[Any]) -> tuple[list[tuple[str, str, str]], set[Any]]:
        done, rest = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        return [f.result() for f in done], rest

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class RayEngine:
    """The same task function as Ray remote calls, on an existing cluster or a local Ray for the run."""

    def __init__(self, workers: int, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--engine ray: Ray is not installed; pip install 'llm-market-sim[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            if address:
                ray.init(address=address)
            else:
                ray.init(num_cpus=workers, include_dashboard=False)
        self.remote = ray.remote(run_task)

    def submit(self, task: Task) -> Any:
        return self.remote.remote(task)

    def wait(self, pending: set[Any]) -> tuple[list[tuple[str, str, str]], set[Any]]:
        done, rest = self.ray.wait(list(pending), num_returns=1)
        return self.ray.get(done), set(rest)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


# -- the driver --------------------------------------------------------------------------------


def run_sweep(
    spec_path: Path,
    out_dir: Path,
    *,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
) -> SweepResult:
    """Run the tasks of a sweep that have no result file yet; at most ``2 * workers`` in flight."""
    spec_path, out = Path(spec_path), Path(out_dir)
    spec = load_spec(spec_path)
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ConfigError(f"--workers: got {workers}, expected at least 1")
    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine: got {engine!r}, expected 'local' or 'ray'")
    results, failed_dir = out / "results", out / "failed"
    results.mkdir(parents=True, exist_ok=True)
    failed_dir.mkdir(exist_ok=True)
    write_atomic(out / "sweep.toml", spec_path.read_text())

    total = sum(1 for _ in tasks(spec))
    skipped = sum(1 for t in tasks(spec) if (results / f"{t.name}.json").exists())
    todo = (t for t in tasks(spec) if not (results / f"{t.name}.json").exists())
    progress = _Progress(total - skipped)
    _sweep_log(out, "sweep.start", engine=engine, workers=workers, tasks=total, skipped=skipped)
    log.info("sweep.start", tasks=total, skipped=skipped, engine=engine, workers=workers, out=str(out))
    wall = time.perf_counter()
    runner = LocalEngine(workers) if engine == "local" else RayEngine(workers, address)
    done = failed = 0
    try:
        pending: set[Any] = set()
        window = 2 * workers
        for task in itertools.chain(todo, [None]):
            while pending and (task is None or len(pending) >= window):
                outcomes, pending = runner.wait(pending)
                for name, status, text in outcomes:
                    if status == "done":
                        write_atomic(results / f"{name}.json", text)
                        (failed_dir / f"{name}.json").unlink(missing_ok=True)
                        done += 1
                    else:
                        write_atomic(failed_dir / f"{name}.json", text)
                        failed += 1
                        log.warning("sweep.task_failed", task=name, error=json.loads(text)["error"])
                    progress.advance(done, failed)
            if task is not None:
                pending.add(runner.submit(task))
    finally:
        runner.close()
        progress.close()
    wall = time.perf_counter() - wall
    _sweep_log(out, "sweep.done", done=done, failed=failed, skipped=skipped, wall_seconds=round(wall, 3))
    log.info("sweep.done", done=done, failed=failed, skipped=skipped, wall_seconds=round(wall, 3))
    return SweepResult(done, skipped, failed, wall)


def _sweep_log(out: Path, event: str, **fields: Any) -> None:
    """Timing and counts of sweep runs, kept apart from result files so that those stay reproducible."""
    line = json.dumps({"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields})
    with open(out / "sweep.log", "a") as f:
        f.write(line + "\n")


class _Progress:
    """A tqdm bar on a terminal; otherwise a log line at every tenth of the way."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.t0 = time.perf_counter()
        self.bar = None
        self.next_line = max(1, math.ceil(total / 10))
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="task", dynamic_ncols=True)

    def advance(self, done: int, failed: int) -> None:
        finished = done + failed
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=failed)
            return
        if finished % self.next_line == 0 or finished == self.total:
            rate = finished / max(time.perf_counter() - self.t0, 1e-9)
            eta = (self.total - finished) / rate if rate else float("inf")
            log.info("sweep.progress", done=done, failed=failed, total=self.total,
                        tasks_per_s=round(rate, 2), eta_s=round(eta, 1))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
