"""Golden runs: the event logs of the built-in scenarios and the quick verdict table, checked in.

A change that alters them changes what the simulator computes; if that is intended, regenerate with
``python tests/golden/runs.py`` and say why in the commit.

The same code and seed do not give the same bytes everywhere: BLAS kernels (chosen per processor by
OpenBLAS, or forced by ``OPENBLAS_CORETYPE``) and NumPy's own SIMD loops (AVX2 or AVX-512, chosen at
import) may round the last bit of a result differently. Two digests per run are therefore kept:

* ``portable``: sha256 of the decoded records (wire frames decoded too) with every float rounded to
  ``SIGNIFICANT`` significant digits, values below ``TINY`` in magnitude taken as 0 and -0.0 as 0.0;
  strings, integers and bytes exact. Stored once and checked on every machine: last-bit differences
  do not reach it, any change in a decision, a payment, a message or a field does.
* ``exact``: sha256 of the log's bytes, stored per numeric platform (``platform()``: BLAS kernel plus
  NumPy's widest enabled SIMD target) and checked only on a machine of that platform.

Regenerating writes the portable digests and this platform's exact entry (other platforms' entries are
kept: they cannot be computed here) and the quick verdict table with the platform that wrote it. The
table is compared cell by cell on every machine (``verdict_cells``: text exact, numbers within
VERDICT_ABS_TOL) and byte for byte on that platform only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import shutil
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DIGESTS = HERE / "digests.json"
VERDICTS = HERE / "verdicts_quick.csv"
SCENARIOS = ("quickstart", "ads", "multi-llm", "finetune")
ROUNDS = 300
REGENERATE = "python tests/golden/runs.py"
# Seven significant digits: a value that differs between platforms only in its last bits (measured:
# relative 4e-15 at most, between OpenBLAS kernels) changes its rounded form only if it lies that close
# to a rounding boundary, with a chance of about 4e-15 / 1e-7 per value. Summed over every float of a
# log, as if each one differed, that expects 5e-4 flips in the largest log (ads, 36k floats) and 1e-2
# even at 1e-13; at ten digits it would be 0.5, a coin toss. Decisions, payments (integers), messages
# and any float change above 1e-7 relative still change the digest; finer changes are the exact
# digests' business.
SIGNIFICANT = 7
# Values that are zero up to rounding (a sum of terms that cancel) come out as +-1e-17 or so, with a
# sign that depends on the order of summation; below TINY they count as 0.
TINY = 1e-12
# Numbers in the verdict table are printed with 3 or 6 decimals: an absolute tolerance far below the
# printed step accepts only the same printed value (or -0.000000 for 0.000000), never a change in
# the last printed decimal.
VERDICT_ABS_TOL = 1e-9


def blas_kernel() -> str:
    """The BLAS kernel NumPy runs here, e.g. ``openblas-Haswell``."""
    import numpy  # noqa: F401  (loads the BLAS library that threadpoolctl inspects)
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return "no-blas"
    return f"{blas[0]['internal_api']}-{blas[0].get('architecture') or 'unknown'}"


def simd_level() -> str:
    """NumPy's widest SIMD target enabled on this machine (after ``NPY_DISABLE_CPU_FEATURES``), e.g.
    ``x86_v3`` (AVX2, FMA3) or ``x86_v4`` (AVX-512): the ufunc loops NumPy dispatches to."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as umath  # type: ignore[no-redef]
    enabled = umath.__cpu_features__
    dispatched = [t for t in umath.__cpu_dispatch__ if enabled.get(t)]
    baseline = list(umath.__cpu_baseline__)
    widest = dispatched[-1] if dispatched else (baseline[-1] if baseline else "none")
    return widest.lower()


def platform() -> str:
    """The key of this machine's exact digests, e.g. ``openblas-Haswell+x86_v3``."""
    return f"{blas_kernel()}+{simd_level()}"


def load_digests() -> dict[str, Any]:
    """``{"portable": {scenario: digest}, "exact": {platform: {scenario: digest}},
    "verdicts_platform": the platform that wrote verdicts_quick.csv}``."""
    return json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {"portable": {}, "exact": {}}


def _canonical(value: Any) -> Any:
    """A JSON-able form of a decoded value, floats rounded (see SIGNIFICANT, TINY), types tagged so
    that 1 and 1.0, "ab" and b"ab", a list and a map never give the same form."""
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, float):
        if not math.isfinite(value):
            return ["f", repr(value)]
        return ["f", "0" if abs(value) < TINY else f"{value:.{SIGNIFICANT - 1}e}"]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, (bytes, bytearray)):
        return ["y", bytes(value).hex()]
    if value is None:
        return ["n"]
    if isinstance(value, (list, tuple)):
        return ["l", [_canonical(v) for v in value]]
    if isinstance(value, dict):
        return ["d", [[_canonical(k), _canonical(v)] for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))]]
    raise TypeError(f"golden portable digest: no canonical form for {type(value).__name__} {value!r}")


def _record_form(record: Any) -> list:
    """One record as ``[type, [field, value]...]``; a sent message's frame is decoded, so its floats
    are rounded like the record's own."""
    from market.core import wire
    from market.runtime.records import MessageSent

    out: list = [record.record_type]
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(record, MessageSent) and f.name == "frame":
            msg = wire.decode(value)
            value = {"kind": msg.kind, **{g.name: getattr(msg, g.name) for g in fields(msg)}}
        out.append([f.name, _canonical(value)])
    return out


def portable_digest(log: Path) -> str:
    """sha256 of the log's decoded records in canonical form (floats rounded; see the module docstring)."""
    from market.runtime.eventlog import iter_frames

    h = hashlib.sha256()
    for offset, record, torn in iter_frames(log):
        if record is None:
            raise ValueError(f"golden portable digest: {log} ends in a torn frame at offset {offset}: {torn}")
        h.update(json.dumps(_record_form(record), separators=(",", ":"), ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def run(scenario: str, out: Path) -> Path:
    """Run ``scenario`` at seed 0 for ROUNDS rounds under ``out``; the path of its event log."""
    from market.runtime.run import run_scenario

    run_dir = out / scenario
    run_scenario(scenario, seed=0, rounds=ROUNDS, out=run_dir)
    return run_dir / "events.msgpack"


def digests(scenario: str, out: Path) -> tuple[str, str]:
    """``(exact, portable)`` digests of ``scenario``'s golden run, written under ``out``."""
    log = run(scenario, out)
    return hashlib.sha256(log.read_bytes()).hexdigest(), portable_digest(log)


def quick_verdicts(out: Path, workers: int = 2) -> bytes:
    """The bytes of ``verdicts --quick``'s verdicts.csv."""
    from market.lab import verdicts

    verdicts.run(out, quick=True, workers=workers)
    return (out / "verdicts.csv").read_bytes()


def _number(cell: str) -> float | None:
    try:
        x = float(cell)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def verdict_cells(got: bytes, want: bytes) -> list[str]:
    """The differences between two verdict tables, one line each (empty: they agree).

    Same header, same number of rows; a cell that parses as a finite number in both tables is compared
    as a number within VERDICT_ABS_TOL (so -0.000000 equals 0.000000), every other cell as text."""
    g = list(csv.reader(io.StringIO(got.decode())))
    w = list(csv.reader(io.StringIO(want.decode())))
    if not w:
        return ["the checked-in table is empty"]
    if not g or g[0] != w[0]:
        return [f"header {g[0] if g else None} != {w[0]}"]
    if len(g) != len(w):
        return [f"{len(g) - 1} rows != {len(w) - 1}"]
    diffs = []
    for i, (grow, wrow) in enumerate(zip(g[1:], w[1:]), start=1):
        if len(grow) != len(wrow):
            diffs.append(f"row {i}: {len(grow)} cells != {len(wrow)}")
            continue
        for col, a, b in zip(w[0], grow, wrow):
            x, y = _number(a), _number(b)
            same = abs(x - y) <= VERDICT_ABS_TOL if x is not None and y is not None else a == b
            if not same:
                diffs.append(f"row {i} ({wrow[0]}, {wrow[1]}), {col}: {a!r} != {b!r}")
    return diffs


def main() -> int:
    tmp = Path(tempfile.mkdtemp())
    try:
        stored = load_digests()
        exact, portable = {}, {}
        for s in SCENARIOS:
            exact[s], portable[s] = digests(s, tmp)
        stored["portable"] = portable
        stored["exact"] = dict(sorted({**stored.get("exact", {}), platform(): exact}.items()))
        VERDICTS.write_bytes(quick_verdicts(tmp / "verdicts"))
        DIGESTS.write_text(json.dumps({"portable": stored["portable"], "exact": stored["exact"],
                                       "verdicts_platform": platform()}, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp)
    print(f"wrote {DIGESTS.name} (portable, and exact for {platform()}) and {VERDICTS.name}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    sys.exit(main())
