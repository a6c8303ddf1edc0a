"""Event log: CRC-checked frames; a torn last frame is reported, everything before it is read."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.runtime.eventlog import MAGIC, EventLogError, EventLogWriter, read_log
from market.runtime.records import LOG_SCHEMA, Footer, Header, LedgerTransfer, Record

RECORDS = [Header(LOG_SCHEMA, "0.0", {"run": {"seed": 1}}, 1)] + [
    LedgerTransfer(float(i), "a", "b", i, "memo") for i in range(40)] + [Footer({"rounds": 40})]


@pytest.fixture(scope="module")
def log_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("log") / "events.msgpack"
    w = EventLogWriter(path)
    for r in RECORDS:
        w.append(r)
    w.close()
    data = path.read_bytes()
    assert read_log(path).records == RECORDS
    return data


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_torn_last_frame_is_reported_and_everything_before_is_read(tmp_path_factory, log_bytes, data):
    cut = data.draw(st.integers(len(MAGIC), len(log_bytes) - 1))
    path = tmp_path_factory.mktemp("torn") / "events.msgpack"
    path.write_bytes(log_bytes[:cut])
    contents = read_log(path)
    assert contents.records == RECORDS[: len(contents.records)]
    whole = len(contents.records)
    if contents.torn is None:
        assert contents.valid_bytes == cut  # the cut fell exactly between frames
    else:
        assert "torn" in contents.torn
        assert whole < len(RECORDS)
        assert contents.valid_bytes < cut


def test_corruption_before_the_end_is_an_error(tmp_path, log_bytes):
    bad = bytearray(log_bytes)
    bad[len(MAGIC) + 12] ^= 0xFF  # inside the first frame's payload
    path = tmp_path / "events.msgpack"
    path.write_bytes(bytes(bad))
    with pytest.raises(EventLogError, match="CRC mismatch"):
        read_log(path)


def test_not_a_log_is_refused(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"hello world, not a log")
    with pytest.raises(EventLogError, match="not an event log"):
        read_log(path)


def _frame(payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_reader_on_mutated_logs_raises_only_event_log_errors(tmp_path_factory, log_bytes, data):
    """Fuzz: flipped, inserted, deleted bytes and appended junk; the reader either reads records,
    reports a torn tail, or raises EventLogError, and never anything else."""
    buf = bytearray(log_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "append"]))
        at = data.draw(st.integers(0, len(buf)))
        if op == "flip" and at < len(buf):
            buf[at] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[at:at + data.draw(st.integers(1, 16))]
        else:
            buf += data.draw(st.binary(max_size=32))
    path = tmp_path_factory.mktemp("fuzz") / "events.msgpack"
    path.write_bytes(bytes(buf))
    try:
        contents = read_log(path)
    except EventLogError:
        return
    assert all(isinstance(r, Record) for r in contents.records)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_a_well_framed_payload_that_is_not_a_record_is_an_error(tmp_path_factory, payload):
    """CRC-valid frames carrying garbage, non-arrays, unknown record types or trailing bytes."""
    path = tmp_path_factory.mktemp("junk") / "events.msgpack"
    path.write_bytes(MAGIC + _frame(payload) + _frame(msgpack.packb(["footer", {}])))
    try:
        contents = read_log(path)
    except EventLogError:
        return
    assert contents.records[-1] == Footer({}) and all(isinstance(r, Record) for r in contents.records)
