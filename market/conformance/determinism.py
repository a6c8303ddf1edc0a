"""Determinism check for a scenario and the agents in it: two runs with one seed must write byte-identical event
logs (every stream derives from the seed; no clock, no global RNG, no set or hash order leaks into a record).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from market.conformance.api import ConformanceError
from market.runtime.eventlog import read_log
from market.runtime.run import run_scenario


def check_run_determinism(scenario: str, overrides: Sequence[str] = (), *, seed: int = 0,
                          rounds: int | None = 20) -> None:
    """Run ``scenario`` (a built-in name or a TOML file, with ``--set`` style ``overrides``) twice with ``seed``
    into two temporary directories; raise ConformanceError naming the first record that differs."""
    with tempfile.TemporaryDirectory() as tmp:
        logs = []
        for name in ("a", "b"):
            run_scenario(scenario, seed=seed, rounds=rounds, overrides=list(overrides), out=Path(tmp) / name)
            logs.append(Path(tmp) / name / "events.msgpack")
        first, second = (p.read_bytes() for p in logs)
        if first == second:
            return
        records = [read_log(p).records for p in logs]
        where = next((i for i, (a, b) in enumerate(zip(*records)) if a != b), min(map(len, records)))
        seen = [r[where] if where < len(r) else "end of log" for r in records]
        raise ConformanceError(
            f"scenario {scenario!r} with {list(overrides)} and seed {seed}: two runs wrote different event logs; "
            f"first difference at record {where}: {seen[0]!r} vs {seen[1]!r}; expected byte-identical logs"
        )
