"""Reading a long log takes memory for one record at a time: replay streams it, and finding where to
resume keeps each checkpoint's place, not its state (``StoredCheckpoint``), reading back only the one tried.
Memory is measured with tracemalloc (allocations, not time), against a log whose checkpoints add up to
far more than the bound."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from market.core.wire import Bid, encode
from market.runtime.checkpoint import CheckpointError, StoredCheckpoint, pack_state, scan_checkpoints
from market.runtime.eventlog import EventLogWriter, decode_frame, iter_frames
from market.runtime.records import LOG_SCHEMA, Checkpoint, Footer, Header, MessageSent, RoundClosed
from market.runtime.run import replay

CHECKPOINTS = 80
ROUNDS = 10  # rounds between checkpoints
STATE_BYTES = 256 * 1024  # each checkpoint's array: 80 of them are 20 MiB of state in the log
# What reading may hold at once: one checkpoint frame as read, unpacked and decoded (a few copies of it
# while it passes), far under the 20 MiB that holding every checkpoint took.
BOUND = 12 * STATE_BYTES


def _write_long_log(path: Path) -> int:
    """A header, rounds of bid messages with a checkpoint of STATE_BYTES every ROUNDS rounds, a footer."""
    w = EventLogWriter(path, _fsync=False)
    w.append(Header(LOG_SCHEMA, "0.0", {"run": {"seed": 0}}, 0))
    t = 0.0
    for c in range(CHECKPOINTS):
        for r in range(ROUNDS):
            t += 1.0
            for i in range(3):
                w.append(MessageSent(t, f"p{i}", "auctioneer", "bid", encode(Bid(c * ROUNDS + r, 0.5 + i))))
            w.append(RoundClosed(t, c * ROUNDS + r, c * ROUNDS + r, "p0", (1, 0, 0), {}))
        state = np.full(STATE_BYTES // 8, float(c))
        w.append(Checkpoint(t, pack_state({"world": {"marker": c, "big": state}})))
    w.append(Footer({"rounds": CHECKPOINTS * ROUNDS}))
    w.close()
    return path.stat().st_size


def _peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def long_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("long") / "events.msgpack"
    size = _write_long_log(path)
    assert size > 6 * BOUND  # the bound below is far under what holding the log would take
    return path


def test_scanning_for_checkpoints_holds_one_checkpoint_not_all(long_log: Path) -> None:
    scan, peak = _peak(lambda: scan_checkpoints(long_log))
    assert len(scan.checkpoints) == CHECKPOINTS
    assert peak < BOUND, f"scan held {peak} bytes at its peak, expected under {BOUND}"
    facts, stored = scan.checkpoints[-1]
    assert isinstance(stored, StoredCheckpoint) and stored.start == facts.start and stored.end == facts.end
    state, peak_one = _peak(lambda: stored.state)
    assert state["world"]["marker"] == CHECKPOINTS - 1  # the newest, read back from its place in the file
    assert peak_one < BOUND


def test_replay_and_iter_frames_stream_the_log(long_log: Path) -> None:
    def walk() -> int:
        return sum(1 for _ in iter_frames(long_log))

    frames, peak = _peak(walk)
    assert frames == 2 + CHECKPOINTS * (ROUNDS * 4 + 1)
    assert peak < BOUND
    (footer, recomputed, torn), peak_replay = _peak(lambda: replay(long_log))
    assert footer == {"rounds": CHECKPOINTS * ROUNDS} and recomputed["rounds"] == CHECKPOINTS * ROUNDS and torn is None
    assert peak_replay < BOUND


def test_a_checkpoint_changed_after_the_scan_is_refused_when_read_back(tmp_path: Path) -> None:
    path = tmp_path / "events.msgpack"
    _write_long_log(path)
    facts, stored = scan_checkpoints(path).checkpoints[3]
    data = bytearray(path.read_bytes())
    data[stored.end - 10] ^= 0xFF  # a byte of the checkpoint's payload
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"checkpoint at byte {stored.start}.*changed since"):
        _ = stored.state
    with pytest.raises(CheckpointError, match="changed since"):
        _ = StoredCheckpoint(path, stored.start, path.stat().st_size + 5, stored.t).state  # past the end


def test_decode_frame_reads_what_the_writer_wrote_and_refuses_a_damaged_head(tmp_path: Path) -> None:
    path = tmp_path / "events.msgpack"
    _write_long_log(path)
    ends = [end for end, _, _ in iter_frames(path)]
    raw = path.read_bytes()
    frame = raw[ends[0]:ends[1]]
    rec = decode_frame(frame)
    assert isinstance(rec, MessageSent) and rec.message() == Bid(0, 0.5)
    with pytest.raises(Exception, match="marker or CRC"):
        decode_frame(b"\x00" + frame[1:])
