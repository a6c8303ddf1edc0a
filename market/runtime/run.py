"""One run: resolve a scenario, build its world and run it; resume a killed run; replay a log.

The CLI, the sweep, the deviation engines and scripts all go through these functions, so every run
directory they write replays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from market.runtime.checkpoint import CheckpointError, Resume, decode_checkpoint, scan_checkpoints
from market.runtime.config import ConfigError, load_scenario, resolve
from market.runtime.eventlog import EventLogError, iter_frames
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
) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    """Resolve, build and run a scenario; returns (config, summary, its Scenario)."""
    sets = list(overrides)
    if seed is not None:
        sets.append(f"run.seed={seed}")
    if rounds is not None:
        sets.append(f"run.rounds={rounds}")
    config, market = resolve(scenario, sets)
    world = World(config, config["run"]["seed"], out)
    market.build(world, config)
    world.metrics.extend(market.observers(config, world.seed))
    summary = world.run()
    return config, summary, market


def resume_scenario(
    run_dir: Path, scenario: str | None = None, *, report: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    """Continue a killed run from the newest checkpoint in its log that passes its checks (from the start
    if the log has none): the log is cut after that checkpoint and appended to; returns (config, summary,
    its Scenario). A refused checkpoint is passed to ``report`` with its reason and an older one is tried;
    when checkpoints were written and every one is refused, nothing is cut and ``CheckpointError`` gives
    the reasons (starting over would rewrite a run whose record cannot be trusted)."""
    path = _resumable_log(Path(run_dir))
    scan = scan_checkpoints(path)
    config, seed = scan.header.config, scan.header.seed
    named: dict[str, Any] = config["scenario"] if type(config.get("scenario")) is dict else {}
    logged, builder = named.get("name"), named.get("builder")
    if scenario is not None and scenario != logged:
        raise ConfigError(f"--resume: the log in {run_dir} is a run of {logged!r}, not of {scenario!r}")
    if not isinstance(builder, str):
        raise ConfigError(f"--resume: the header of {path} names no scenario.builder: a world built by hand cannot "
                          "be rebuilt from its log")
    market = load_scenario(builder)
    point = Resume(scan.header_end, 0.0, None, config, seed)
    if scan.checkpoints:
        probe = World(config, seed, None)
        market.build(probe, config)
        reference = probe.reference_state()
        refusals: list[str] = []
        for facts, ckpt in reversed(scan.checkpoints):
            try:
                candidate = Resume(facts.end, ckpt.t, decode_checkpoint(facts, ckpt), config, seed, facts)
                probe.check(candidate, reference)
                trial = World(config, seed, None)
                market.build(trial, config)
                trial.trial_restore(candidate)
            except CheckpointError as exc:
                refusals.append(str(exc))
                if report is not None:
                    report(f"{facts.where()} refused: {str(exc).removeprefix(facts.where() + ': ')}")
                continue
            point = candidate
            if refusals and report is not None:
                report(f"resuming from the one at round {facts.rounds} (byte {facts.start})")
            break
        else:
            more = f" | and {len(refusals) - 3} older ones" if len(refusals) > 3 else ""
            raise CheckpointError(f"--resume: every checkpoint in {path} is refused, so the run is not resumed "
                                  f"(start it again with run into a new directory): {' | '.join(refusals[:3])}{more}")
    world = World(config, seed, Path(run_dir), resume=point)
    market.build(world, config)
    world.metrics.extend(market.observers(config, world.seed))
    summary = world.run()
    return config, summary, market


def _resumable_log(run_dir: Path) -> Path:
    """The run directory's event log, or a one-line refusal naming what is missing."""
    if not run_dir.exists():
        raise EventLogError(f"--resume: {run_dir}: no such directory")
    if not run_dir.is_dir():
        raise EventLogError(f"--resume: {run_dir}: not a directory (expected a run directory holding events.msgpack)")
    path = run_dir / "events.msgpack"
    if not path.is_file():
        raise EventLogError(f"--resume: {run_dir}: no events.msgpack in it (expected a run directory)")
    if path.stat().st_size == 0:
        raise EventLogError(f"--resume: {path}: empty (no header frame): the run cannot be resumed (start it again)")
    return path


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
