"""Golden runs: event-log digests of the built-in scenarios and the quick verdict table, checked in.

A change that alters any of them changes what the simulator computes; if that is intended, regenerate
them with ``python tests/golden/runs.py`` and say why in the commit.

The quickstart's linear quality and the mechanisms' LinUCB go through BLAS, whose kernels (chosen per
processor by OpenBLAS, or forced by ``OPENBLAS_CORETYPE``) may round the last bit of a dot product
differently: the same code and seed then log different bytes. Digests are therefore kept per kernel;
regenerating adds or refreshes the entry of the kernel the machine runs.
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


def blas_kernel() -> str:
    """The BLAS kernel NumPy runs here, e.g. ``openblas-Haswell``."""
    import numpy  # noqa: F401  (loads the BLAS library that threadpoolctl inspects)
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return "no-blas"
    return f"{blas[0]['internal_api']}-{blas[0].get('architecture') or 'unknown'}"


def expected_digests() -> dict[str, str] | None:
    """The checked-in digests for this machine's BLAS kernel, or None if none were taken on it."""
    return json.loads(DIGESTS.read_text()).get(blas_kernel())


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
        by_kernel = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
        by_kernel[blas_kernel()] = {s: digest(s, tmp) for s in SCENARIOS}
        DIGESTS.write_text(json.dumps(dict(sorted(by_kernel.items())), indent=2) + "\n")
        VERDICTS.write_bytes(quick_verdicts(tmp / "verdicts"))
    finally:
        shutil.rmtree(tmp)
    print(f"wrote {DIGESTS.name} ({blas_kernel()}) and {VERDICTS.name}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    sys.exit(main())
