"""One run: resolve a scenario, build its world and run it; resume a killed run; replay a log.

The CLI, the sweep, the deviation engines and scripts all go through these functions, so every run
directory they write replays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from market.runtime.builders import logged_scenario
from market.runtime.checkpoint import CheckpointError, Resume, decode_checkpoint, scan_checkpoints
from market.runtime.config import ConfigError, resolve
from market.runtime.eventlog import iter_frames
from market.runtime.records import Footer, Header
from market.runtime.rundir import RunDirLock, claim
from market.runtime.scenario import Scenario
from market.runtime.summary import SummaryAccumulator
from market.runtime.verify import log_path
from market.runtime.world import ResumeCut, World


def run_scenario(
    scenario: str,
    *,
    seed: int | None = None,
    rounds: int | None = None,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    force: bool = False,
    key: bytes | None = None,
    fail_fast: bool = False,
    plugins: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    """Resolve, build and run a scenario; returns (config, summary, its Scenario). ``fail_fast``: the first
    agent exception ends the run (``World``'s ``AgentFailed``) instead of crashing that agent alone.
    ``plugins``: modules imported before names are resolved (``--plugin``; ``config.resolve``).

    ``out`` is touched only once the config is resolved and the world built (a bad config leaves it as
    it was), and is locked for the whole run. A run already in it (finished or not) is refused unless
    ``force``, which deletes that run's files first (``rundir.claim``). ``key`` keys the log's hash
    chain (``eventlog.read_key_file``)."""
    sets = list(overrides)
    if seed is not None:
        sets.append(f"run.seed={seed}")
    if rounds is not None:
        sets.append(f"run.rounds={rounds}")
    config, market = resolve(scenario, sets, plugins)
    summary = run_config(config, market, config["run"]["seed"], out, force=force, key=key, fail_fast=fail_fast)
    return config, summary, market


def run_config(
    config: dict[str, Any],
    market: Scenario,
    seed: int,
    out: Path | None,
    *,
    force: bool = False,
    key: bytes | None = None,
    fail_fast: bool = False,
) -> dict[str, Any]:
    """Build and run a resolved config with its Scenario (``verify --resimulate`` re-runs a logged one
    through here, so it runs exactly what ``run`` runs); returns the summary. ``out`` is claimed
    (``rundir.claim``) only once the world is built."""
    world = World(config, seed, out, key=key, fail_fast=fail_fast)
    market.build(world, config)
    world.metrics.extend(market.observers(config, world.seed))
    if out is None:
        return world.run()
    with claim(out, force=force):
        return world.run()


def resume_scenario(
    run_dir: Path,
    scenario: str | None = None,
    *,
    key: bytes | None = None,
    on_cut: Callable[[ResumeCut], None] | None = None,
    trust_builder: bool = False,
    report: Callable[[str], None] | None = None,
    fail_fast: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    """Continue a killed run from the newest checkpoint in its log that passes its checks (from the start
    if the log has none): the log is cut after that checkpoint (the rest moved to ``events.msgpack.cut-N``,
    told to ``on_cut`` before the run goes on) and appended to, its chain continued with ``key`` (the run's
    own key); returns (config, summary, its Scenario).

    A refused checkpoint is passed to ``report`` with its reason and an older one is tried; when
    checkpoints were written and every one is refused, nothing is cut and ``CheckpointError`` gives the
    reasons (starting over would rewrite a run whose record cannot be trusted). The run directory is locked
    from before the log is read until the run's last write. The logged builder must be an installed
    scenario unless ``trust_builder``."""
    with RunDirLock(Path(run_dir)):  # first: a run still writing here is named, whatever its log holds yet
        path = log_path(Path(run_dir))  # an empty directory or log: one line
        return _resume(Path(run_dir), path, scenario, key=key, on_cut=on_cut, trust_builder=trust_builder,
                       report=report, fail_fast=fail_fast)


def _resume(
    run_dir: Path,
    path: Path,
    scenario: str | None,
    *,
    key: bytes | None,
    on_cut: Callable[[ResumeCut], None] | None,
    trust_builder: bool,
    report: Callable[[str], None] | None,
    fail_fast: bool,
) -> tuple[dict[str, Any], dict[str, Any], Scenario]:
    scan = scan_checkpoints(path)
    config, seed = scan.header.config, scan.header.seed
    named: dict[str, Any] = config["scenario"] if type(config.get("scenario")) is dict else {}
    logged, builder = named.get("name"), named.get("builder")
    if scenario is not None and scenario != logged:
        raise ConfigError(f"--resume: the log in {run_dir} is a run of {logged!r}, not of {scenario!r}")
    if not isinstance(builder, str):
        raise ConfigError(f"--resume: the header of {path} names no scenario.builder: a world built by hand cannot "
                          "be rebuilt from its log")
    market = logged_scenario(builder, trust_builder=trust_builder, config=config)
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
    world = World(config, seed, run_dir, resume=point, key=key, fail_fast=fail_fast)
    if on_cut is not None and world.cut is not None:
        on_cut(world.cut)
    market.build(world, config)
    world.metrics.extend(market.observers(config, world.seed))
    summary = world.run()
    return config, summary, market


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
    market = logged_scenario(spec, trust_builder=trust_builder, config=config) if spec else None
    return market.observers(config, seed) if market is not None else []
