"""One run: resolve a scenario, build its world and run it; resume a killed run; replay a log.

The CLI, the sweep, the deviation engines and scripts all go through these functions, so every run
directory they write replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from market.runtime.builders import logged_scenario
from market.runtime.checkpoint import last_checkpoint
from market.runtime.config import ConfigError, resolve
from market.runtime.eventlog import iter_frames
from market.runtime.records import Footer, Header
from market.runtime.scenario import Scenario
from market.runtime.summary import SummaryAccumulator
from market.runtime.verify import log_path
from market.runtime.world import World


def run_scenario(
    scenario: str,
    *,
    seed: int | None = None,
    rounds: int | None = None,
    overrides: Sequence[str] = (),
    out: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    """Resolve, build and run a scenario; returns (config, summary, its Scenario)."""
    sets = list(overrides)
    if seed is not None:
        sets.append(f"run.seed={seed}")
    if rounds is not None:
        sets.append(f"run.rounds={rounds}")
    config, market = resolve(scenario, sets)
    return config, run_config(config, market, config["run"]["seed"], out), market


def run_config(config: dict[str, Any], market: Scenario, seed: int, out: Path | None) -> dict[str, Any]:
    """Build and run a resolved config with its Scenario (``verify --resimulate`` re-runs a logged one
    through here, so it runs exactly what ``run`` runs); returns the summary."""
    world = World(config, seed, out)
    market.build(world, config)
    world.metrics.extend(market.observers(config, world.seed))
    return world.run()


def resume_scenario(run_dir: Path, scenario: str | None = None, *,
                    trust_builder: bool = False) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    """Continue a killed run from the last checkpoint in its log (from the start if it has none):
    the log is cut after that checkpoint and appended to; returns (config, summary, its Scenario).
    The logged builder must be an installed scenario unless ``trust_builder``."""
    point = last_checkpoint(log_path(Path(run_dir)))  # a missing or empty directory, or a file: one line
    logged = point.config["scenario"]["name"]
    if scenario is not None and scenario != logged:
        raise ConfigError(f"--resume: the log in {run_dir} is a run of {logged!r}, not of {scenario!r}")
    market = logged_scenario(point.config["scenario"]["builder"], trust_builder=trust_builder)
    world = World(point.config, point.seed, Path(run_dir), resume=point)
    market.build(world, point.config)
    world.metrics.extend(market.observers(point.config, world.seed))
    summary = world.run()
    return point.config, summary, market


def replay(run_dir: Path, *, trust_builder: bool = False) -> tuple[dict[str, Any] | None, dict[str, Any], str | None]:
    """Recompute the summary from a log; returns (footer summary or None, recomputed, torn note).
    ``verify.verify_run`` does this and reconciles the records with each other and the run's files."""
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
            metrics = scenario_observers(record.config, record.seed, trust_builder=trust_builder)
        acc.observe(record)
        for m in metrics:
            m.observe(record)
    result = acc.result()
    if metrics:
        result["metrics"] = {k: v for m in metrics for k, v in m.result().items()}
    return footer, result, torn


def scenario_observers(config: dict[str, Any], seed: int, *, trust_builder: bool = False) -> list[Any]:
    """The metric observers of the Scenario a logged config names; none for a log of a world built by hand.
    The builder must be an installed scenario unless ``trust_builder`` (``builders.logged_scenario``)."""
    spec = config.get("scenario", {}).get("builder")
    return logged_scenario(spec, trust_builder=trust_builder).observers(config, seed) if spec else []
