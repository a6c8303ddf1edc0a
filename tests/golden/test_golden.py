"""The golden runs still hold: the same decoded records everywhere, the same log bytes and verdict-table
bytes on the numeric platform that took them, the same verdict table cell by cell everywhere.

On a platform without exact digests (or other than the one that wrote the verdict table) only the
byte comparison is skipped, with a warning naming the platform; the portable checks still run and
can still fail.
"""

import hashlib
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs  # noqa: E402


@pytest.mark.parametrize("scenario", runs.SCENARIOS)
def test_event_log_is_unchanged(scenario, tmp_path):
    stored = runs.load_digests()
    log = runs.run(scenario, tmp_path)
    want = stored["portable"][scenario]
    got = runs.portable_digest(log)
    assert got == want, (f"the decoded records of {scenario} (seed 0, {runs.ROUNDS} rounds, floats to "
                         f"{runs.SIGNIFICANT} significant digits) changed: {got} != {want}. If the change is "
                         f"intended, regenerate with `{runs.REGENERATE}` and say why in the commit.")
    exact = stored["exact"].get(runs.platform())
    if exact is None:
        warnings.warn(f"golden {scenario}: no exact digests for the numeric platform {runs.platform()} "
                      f"(have {sorted(stored['exact'])}); only the portable digest was compared", stacklevel=1)
        return
    got = hashlib.sha256(log.read_bytes()).hexdigest()
    assert got == exact[scenario], (
        f"the event log bytes of {scenario} on {runs.platform()} changed: {got} != {exact[scenario]} (the "
        f"portable digest still holds: only float bits moved). If intended, regenerate with `{runs.REGENERATE}`.")


@pytest.mark.slow
def test_quick_verdict_table_is_unchanged(quick_verdicts):
    got = (quick_verdicts / "verdicts.csv").read_bytes()  # what `runs.quick_verdicts` computes, shared with the page
    want = runs.VERDICTS.read_bytes()
    diffs = runs.verdict_cells(got, want)
    assert not diffs, ("verdicts --quick's verdicts.csv changed (numbers compared within "
                       f"{runs.VERDICT_ABS_TOL}):\n" + "\n".join(diffs[:20]) +
                       f"\nIf intended, regenerate with `{runs.REGENERATE}` and say why in the commit.")
    writer = runs.load_digests().get("verdicts_platform")
    if writer != runs.platform():
        warnings.warn(f"golden verdict table: written on {writer}, this is {runs.platform()}; compared cell by "
                      "cell only, not byte for byte", stacklevel=1)
        return
    assert got == want, "verdicts --quick's verdicts.csv agrees cell by cell but its bytes changed (formatting?)"


def test_verdict_cells_accept_only_rounding_noise():
    """The cell comparison passes a sign of zero and fails a change in the last printed decimal or a verdict."""
    want = runs.VERDICTS.read_bytes()
    header, first, *rest = want.decode().splitlines(keepends=True)
    cells = first.rstrip("\n").split(",")
    assert runs.verdict_cells(want, want) == []

    def with_cell(col: str, value: str) -> bytes:
        row = list(cells)
        row[header.rstrip("\n").split(",").index(col)] = value
        return (header + ",".join(row) + "\n" + "".join(rest)).encode()

    assert runs.verdict_cells(with_cell("platform", "-0.000000"), want) == []
    gain = float(cells[2])
    assert runs.verdict_cells(with_cell("gain", f"{gain + 1e-6:.6f}"), want)
    assert runs.verdict_cells(with_cell("verdict", "gains"), want)
    assert runs.verdict_cells(want[: want.rindex(b"\n", 0, -1) + 1], want)  # the last row dropped


def test_portable_form_rounds_only_last_bits():
    """Floats equal to SIGNIFICANT digits (or both below TINY, of either sign) share a form; anything else not."""
    c = runs._canonical
    assert c(0.1 + 0.2) == c(0.3) and c(-0.0) == c(0.0) == c(-1e-17) == c(3e-13)
    assert c(0.3) != c(0.3 + 1e-6) and c(0.3) == c(0.3 + 1e-9)
    assert c(1.0) != c(1) and c("1") != c(1) and c(b"a") != c("a")
    assert c((1.0, 2.0)) != c({1.0: 2.0}) and c(True) != c(1)
