"""Checkpoints: the state codec is lossless, and a run killed at any moment and resumed ends exactly
as the uninterrupted run (summary, ledger, and the event log byte for byte)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from market.lab.cli import main
from market.runtime.checkpoint import last_checkpoint, pack_state, unpack_state
from market.runtime.config import ConfigError
from market.runtime.eventlog import read_log
from market.runtime.records import Checkpoint
from market.runtime.run import resume_scenario, run_scenario

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**130), 2**130), st.floats(allow_nan=False), st.text(max_size=8),
    st.binary(max_size=8),
    hnp.arrays(st.sampled_from([np.float64, np.int64, np.bool_, np.float32]), hnp.array_shapes(max_dims=3, max_side=4)),
)
states = st.recursive(leaves, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 99)), kids, max_size=4)),
    max_leaves=20)


def same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape \
            and a.tobytes() == b.tobytes()  # bit for bit, NaNs included
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None)
@given(states)
def test_state_survives_messagepack_exactly(state):
    wire = msgpack.packb(pack_state(state), use_bin_type=True)
    back = unpack_state(msgpack.unpackb(wire, raw=False, strict_map_key=False))
    assert same(state, back)


def test_generator_states_round_trip_and_draw_the_same_numbers():
    rng = np.random.default_rng(123)
    rng.random(7)
    packed = msgpack.packb(pack_state({"rng": rng.bit_generator.state}), use_bin_type=True)
    other = np.random.default_rng(0)
    other.bit_generator.state = unpack_state(msgpack.unpackb(packed, raw=False))["rng"]
    assert np.array_equal(rng.random(5), other.random(5))


QUICK = ["--set", "run.checkpoint_every=50"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("whole")
    assert main(["run", "quickstart", "--out", str(d), *QUICK]) == 0
    return d


def _cmd(out):
    return [sys.executable, "-m", "market.lab.cli", "run", "quickstart", "--out", str(out), *QUICK]


def test_sigkill_at_five_random_moments_then_resume_gives_the_uninterrupted_run(uninterrupted, tmp_path):
    whole = (uninterrupted / "events.msgpack").read_bytes()
    rng = np.random.default_rng(2024)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    resumed_from = []
    for k in range(5):
        out = tmp_path / f"kill{k}"
        proc = subprocess.Popen(_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        log = out / "events.msgpack"
        # kill it once its log has grown to a random size short of the whole: a moment mid-run on any
        # machine (a random delay after start missed the run entirely where it ends within 0.4 s)
        target = int(rng.integers(1, len(whole)))
        while proc.poll() is None and (not log.exists() or log.stat().st_size < target):
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        point = last_checkpoint(log)
        resumed_from.append(point.t)
        config, summary, _ = resume_scenario(out)
        assert (out / "events.msgpack").read_bytes() == whole
        expected = json.loads((uninterrupted / "summary.json").read_text())
        assert json.loads((out / "summary.json").read_text()) == expected
        assert summary["balances"] == expected["balances"]
    # the kills did land mid-run at different places (not all before the first checkpoint)
    assert len(set(resumed_from)) >= 2, resumed_from


@pytest.mark.parametrize("scenario, sets", [
    ("faults", ["run.rounds=400", "run.checkpoint_every=25"]),
    ("hostile", ["run.rounds=300", "run.checkpoint_every=25"]),
    ("quickstart", ['mechanism.name="rosa-trcm-ucb"', "run.rounds=300", "run.checkpoint_every=25"]),
    # learners with coins of their own: the checkpoint must hold where their coins are
    ("quickstart", ['mechanism.name="rosa-trcm-ucb"', 'strategies.overrides.provider-0="exp3"',
                    'strategies.overrides.provider-1="gradient"', "run.rounds=300", "run.checkpoint_every=25"]),
])
def test_resume_from_any_cut_of_the_log_rebuilds_the_same_log(scenario, sets, tmp_path):
    run_scenario(scenario, overrides=sets, out=tmp_path / "whole")
    whole = (tmp_path / "whole" / "events.msgpack").read_bytes()
    checkpoints = [r for r in read_log(tmp_path / "whole" / "events.msgpack").records if isinstance(r, Checkpoint)]
    assert len(checkpoints) >= 3
    rng = np.random.default_rng(len(whole))
    for cut in rng.integers(100, len(whole), 2):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "events.msgpack").write_bytes(whole[:cut])  # a crash mid-write leaves a torn tail
        resume_scenario(d)
        assert (d / "events.msgpack").read_bytes() == whole


def test_resume_refuses_overrides_and_another_scenario(uninterrupted):
    with pytest.raises(ConfigError, match="--resume"):
        resume_scenario(uninterrupted, "faults")
    assert main(["run", "quickstart", "--resume", str(uninterrupted), "--seed", "3"]) == 2
