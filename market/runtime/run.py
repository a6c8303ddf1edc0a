"""One run: resolve a scenario, build its world and run it; resume a killed run; replay a log.

The CLI, the sweep, the deviation engines and scripts all go through these functions, so every run
directory they write replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from market.runtime.checkpoint import last_checkpoint
from market.runtime.config import ConfigError, load_scenario, resolve
from market.runtime.eventlog import iter_frames
from market.runtime.records import Footer, Header
from market.runtime.scenario import Scenario
from market.runtime.summary import SummaryAccumulator
from market.runtime.world import World


def run_scenario(
    scenario: str,
    *,
    seed: int | None = None,
    rounds: int | None = None,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    fail_fast: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    """Resolve, build and run a scenario; returns (config, summary, its Scenario). ``fail_fast``: the first
    agent exception ends the run (``World``'s ``AgentFailed``) instead of crashing that agent alone."""
    sets = list(overrides)
    if seed is not None:
        sets.append(f"run.seed={seed}")
    if rounds is not None:
        sets.append(f"run.rounds={rounds}")
    config, market = resolve(scenario, sets)
    world = World(config, config["run"]["seed"], out, fail_fast=fail_fast)
    market.build(world, config)
    world.metrics.extend(market.observers(config, world.seed))
    summary = world.run()
    return config, summary, market


def resume_scenario(run_dir: Path, scenario: str | None = None, *,
                    fail_fast: bool = False) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    """Continue a killed run from the last checkpoint in its log (from the start if it has none):
    the log is cut after that checkpoint and appended to; returns (config, summary, its Scenario)."""
    point = last_checkpoint(Path(run_dir) / "events.msgpack")
    logged = point.config["scenario"]["name"]
    if scenario is not None and scenario != logged:
        raise ConfigError(f"--resume: the log in {run_dir} is a run of {logged!r}, not of {scenario!r}")
    market = load_scenario(point.config["scenario"]["builder"])
    world = World(point.config, point.seed, Path(run_dir), resume=point, fail_fast=fail_fast)
    market.build(world, point.config)
    world.metrics.extend(market.observers(point.config, world.seed))
    summary = world.run()
    return point.config, summary, market


def replay(run_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any], str | None]:
    """Recompute the summary from a log; returns (footer summary or None, recomputed, torn note)."""
    path = Path(run_dir) / "events.msgpack" if Path(run_dir).is_dir() else Path(run_dir)
    acc = SummaryAccumulator()
    metrics: list[Any] = []
    footer = None
    torn = None
    for _, record, why in iter_frames(path):
        if record is None:
            torn = why
            break
        if isinstance(record, Footer):
            footer = record.summary
            continue
        if isinstance(record, Header):
            metrics = scenario_observers(record.config, record.seed)
        acc.observe(record)
        for m in metrics:
            m.observe(record)
    result = acc.result()
    if metrics:
        result["metrics"] = {k: v for m in metrics for k, v in m.result().items()}
    return footer, result, torn


def scenario_observers(config: dict[str, Any], seed: int) -> list[Any]:
    """The metric observers of the Scenario a logged config names; none for a log of a world built by hand."""
    spec = config.get("scenario", {}).get("builder")
    return load_scenario(spec).observers(config, seed) if spec else []
