"""Golden runs: event-log digests of the built-in scenarios and the quick verdict table, checked in.

A change that alters any of them changes what the simulator computes; if that is intended, regenerate
them with ``python tests/golden/runs.py`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIGESTS = HERE / "digests.json"
VERDICTS = HERE / "verdicts_quick.csv"
SCENARIOS = ("quickstart", "ads", "multi-llm", "finetune")
ROUNDS = 300
REGENERATE = "python tests/golden/runs.py"


def digest(scenario: str, out: Path) -> str:
    """sha256 of the event log of ``scenario`` at seed 0 and ROUNDS rounds, written under ``out``."""
    from market.runtime.run import run_scenario

    run_dir = out / scenario
    run_scenario(scenario, seed=0, rounds=ROUNDS, out=run_dir)
    return hashlib.sha256((run_dir / "events.msgpack").read_bytes()).hexdigest()


def quick_verdicts(out: Path, workers: int = 2) -> bytes:
    """The bytes of ``verdicts --quick``'s verdicts.csv."""
    from market.lab import verdicts

    verdicts.run(out, quick=True, workers=workers)
    return (out / "verdicts.csv").read_bytes()


def main() -> int:
    tmp = Path(tempfile.mkdtemp())
    try:
        digests = {s: digest(s, tmp) for s in SCENARIOS}
        DIGESTS.write_text(json.dumps(digests, indent=2) + "\n")
        VERDICTS.write_bytes(quick_verdicts(tmp / "verdicts"))
    finally:
        shutil.rmtree(tmp)
    print(f"wrote {DIGESTS.name} and {VERDICTS.name}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    sys.exit(main())
