"""The golden runs still hold: same event-log bytes and the same quick verdict table as checked in."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs  # noqa: E402


@pytest.mark.parametrize("scenario", runs.SCENARIOS)
def test_event_log_digest_is_unchanged(scenario, tmp_path):
    digests = runs.expected_digests()
    assert digests is not None, (f"no golden digests were taken under the BLAS kernel {runs.blas_kernel()}; "
                                 f"take them with `{runs.REGENERATE}` on a commit whose digests hold elsewhere")
    want = digests[scenario]
    got = runs.digest(scenario, tmp_path)
    assert got == want, (f"the event log of {scenario} (seed 0, {runs.ROUNDS} rounds) changed: {got} != {want}. "
                         f"If the change is intended, regenerate with `{runs.REGENERATE}` and say why in the commit.")


@pytest.mark.slow
def test_quick_verdict_table_is_unchanged(tmp_path):
    got = runs.quick_verdicts(tmp_path)
    assert got == runs.VERDICTS.read_bytes(), (
        "verdicts --quick's verdicts.csv changed; if intended, regenerate with "
        f"`{runs.REGENERATE}` and say why in the commit.")
