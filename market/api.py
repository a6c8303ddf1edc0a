"""The scripting API: ``market.run(...)`` runs a scenario from Python through the same function as
``llm-market run`` (``market.runtime.run.run_scenario``), so a script's run directory holds the same files,
the scenario's metric observers included, and replays and verifies like any other.

``World(...).run()`` alone builds no scenario metrics and writes no ``summary.json`` or ``config.toml``,
which is why scripts should not call it directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from market.core.ledger import to_units
from market.runtime.config import ConfigError, toml_value
from market.runtime.run import run_scenario

# Accounts that are no participant: the user (whose utility is value minus spend, scenario-specific) and the
# outside world that opens balances and receives serving costs.
NOT_PARTICIPANTS = frozenset({"user", "external"})
OPENING = "opening balance"


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one run gives a script.

    config: the resolved config (as logged); summary: the run summary (as in ``summary.json``); metrics:
    the scenario's flat figures (``Scenario.metrics``, the ones a sweep collects); provider_utility: per
    participant but the user, the money it made in the run (received minus paid, opening balances left out,
    in credits; for a procurement provider, payments minus serving costs); log: the event log's path, None
    when the run was not written (``out=None``).
    """

    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: dict[str, float]
    provider_utility: dict[str, float]
    log: Path | None


def provider_utility(summary: Mapping[str, Any]) -> dict[str, float]:
    """Received minus paid per account but the user and ``external``, opening balances left out, in credits."""
    received, paid = summary["received"], summary["paid"]
    accounts = sorted((set(received) | set(paid)) - NOT_PARTICIPANTS)
    return {
        a: to_units(sum(v for memo, v in received.get(a, {}).items() if memo != OPENING)
                    - sum(paid.get(a, {}).values()))
        for a in accounts
    }


def _overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """``{"market.providers": 8}`` or ``["market.providers=8"]`` -> ``--set`` items."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        items = []
        for key, value in overrides.items():
            if not isinstance(key, str):
                raise ConfigError(f"overrides: got key {key!r}, expected a dotted key string such as 'run.rounds'")
            try:
                items.append(f"{key}={toml_value(value)}")
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"overrides: {key}: got {value!r}, expected a TOML value ({exc})") from None
        return items
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"overrides: got {overrides!r}, expected a mapping of dotted keys to values or a list "
                          "of 'key=value' strings")
    return list(overrides)


def run(
    scenario: str | Path,
    *,
    seed: int | None = None,
    rounds: int | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    out: str | Path | None = None,
    force: bool = False,
    plugins: Sequence[str] = (),
) -> RunResult:
    """Run ``scenario`` (a built-in name or a TOML file) as ``llm-market run`` does and return its result.

    seed, rounds: as ``--seed`` / ``--rounds``; overrides: ``--set`` as a mapping (``{"market.providers":
    8}``) or ``"key=value"`` strings; out: the run directory (None: nothing is written, the run is in
    memory); force: replace a run already in ``out``; plugins: modules to import first, as ``--plugin``.
    Bad input raises the CLI's errors (``ConfigError``, ``RunDirError``, ...), each one line.
    """
    out_dir = Path(out) if out is not None else None
    config, summary, market = run_scenario(str(scenario), seed=seed, rounds=rounds, overrides=_overrides(overrides),
                                           out=out_dir, force=force, plugins=plugins)
    return RunResult(config=config, summary=summary, metrics=dict(market.metrics(summary, config)),
                     provider_utility=provider_utility(summary),
                     log=out_dir / "events.msgpack" if out_dir is not None else None)
