"""Event log: numbered, self-checking frames; a torn tail is reported, any other damage is corruption at
its offset; the hash chain over the frames, keyed or not, and how it continues across an append."""

from __future__ import annotations

import struct
import time
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.runtime.eventlog import (
    COMPACT_MAGIC,
    HEAD_SIZE,
    MAGIC,
    SYNC,
    EventLogError,
    EventLogWriter,
    chain_digest,
    cut_log,
    frame_bytes,
    read_key_file,
    read_log,
)
from market.runtime.records import LOG_SCHEMA, Footer, Header, LedgerTransfer, Record

RECORDS = [Header(LOG_SCHEMA, "0.0", {"run": {"seed": 1}}, 1)] + [
    LedgerTransfer(float(i), "a", "b", i, "memo") for i in range(40)] + [Footer({"rounds": 40})]


def _write(path, records, **kw) -> EventLogWriter:
    w = EventLogWriter(path, **kw)
    for r in records:
        w.append(r)
    w.close()
    return w


@pytest.fixture(scope="module")
def log_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("log") / "events.msgpack"
    _write(path, RECORDS)
    data = path.read_bytes()
    assert read_log(path).records == RECORDS
    return data


def _starts(data: bytes) -> list[int]:
    """Offsets where each frame starts, from the lengths in the heads (of an undamaged log)."""
    starts, at = [], len(MAGIC)
    while at < len(data):
        starts.append(at)
        at += HEAD_SIZE + int.from_bytes(data[at + 8:at + 12], "little")
    return starts


def test_the_writer_digest_is_the_chain_of_the_bytes_on_disk_and_the_key_changes_it(tmp_path):
    plain = _write(tmp_path / "plain", RECORDS)
    keyed = _write(tmp_path / "keyed", RECORDS, key=b"secret")
    assert (tmp_path / "plain").read_bytes() == (tmp_path / "keyed").read_bytes()  # the key is not in the file
    got = chain_digest(tmp_path / "plain")
    assert (got.digest, got.frames, got.bytes, got.torn, got.keyed) == (
        plain.digest, len(RECORDS), (tmp_path / "plain").stat().st_size, None, False)
    assert chain_digest(tmp_path / "keyed", b"secret").digest == keyed.digest != plain.digest
    assert chain_digest(tmp_path / "keyed", b"secreT").digest != keyed.digest
    long_key = bytes(range(256)) * 2  # longer than BLAKE2b's 64-byte key: hashed down, still a key
    assert chain_digest(tmp_path / "plain", long_key).digest not in (plain.digest, keyed.digest)


def test_appending_with_the_chain_state_of_the_kept_bytes_gives_the_same_file_and_digest(tmp_path):
    whole = _write(tmp_path / "whole", RECORDS, key=b"k")
    part = tmp_path / "part"
    _write(part, RECORDS[:15], key=b"k")
    state = chain_digest(part, b"k")
    assert state.frames == 15
    w = EventLogWriter(part, append=True, key=b"k", chain_state=state)
    for r in RECORDS[15:]:
        w.append(r)
    w.sync()
    w.close()
    assert part.read_bytes() == (tmp_path / "whole").read_bytes() and w.digest == whole.digest


def test_appending_to_a_file_that_does_not_end_where_the_chain_state_does_is_refused(tmp_path):
    path = tmp_path / "log"
    _write(path, RECORDS[:5])
    state = chain_digest(path)
    with open(path, "ab") as f:
        f.write(b"\x00")
    with pytest.raises(EventLogError, match="appending at byte"):
        EventLogWriter(path, append=True, chain_state=state)
    with pytest.raises(EventLogError, match="chain state"):
        EventLogWriter(path, append=True)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_truncation_is_a_torn_tail_and_everything_before_is_read(tmp_path_factory, log_bytes, data):
    cut = data.draw(st.integers(0, len(log_bytes) - 1))
    path = tmp_path_factory.mktemp("torn") / "events.msgpack"
    path.write_bytes(log_bytes[:cut])
    contents = read_log(path)
    assert contents.records == RECORDS[: len(contents.records)]
    if contents.torn is None:
        assert contents.valid_bytes == cut  # the cut fell exactly between frames
    else:
        assert "torn" in contents.torn or "inside the magic" in contents.torn
        assert contents.valid_bytes < cut or cut < len(MAGIC)
    chain = chain_digest(path)
    assert chain.frames == len(contents.records) and (chain.torn is None) == (contents.torn is None)


def test_every_single_byte_change_anywhere_is_corruption_at_its_frame(tmp_path, log_bytes):
    """Structured damage at every position class: magic, each head field (sync, sequence, length, both
    CRCs), payloads, the first, a middle and the last frame. Every byte, two ways."""
    starts = _starts(log_bytes)
    assert len(starts) == len(RECORDS)
    path = tmp_path / "events.msgpack"
    for at in range(len(log_bytes)):
        for flip in (0x01, 0xFF):
            bad = bytearray(log_bytes)
            bad[at] ^= flip
            path.write_bytes(bytes(bad))
            with pytest.raises(EventLogError) as info:
                read_log(path)
            text = str(info.value)
            if at < len(MAGIC):
                assert "event log" in text
                continue
            k = max(i for i, s in enumerate(starts) if s <= at)
            assert f"corrupt log at byte {starts[k]}, frame {k}:" in text, (at, text)
            if k + 1 < len(starts):
                assert f"next intact frame starts at byte {starts[k + 1]}" in text, (at, text)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_reader_on_mutated_logs_raises_only_event_log_errors(tmp_path_factory, log_bytes, data):
    """Fuzz: flipped, inserted, deleted bytes, appended junk and truncations; the reader either reads
    records, reports a torn tail, or raises EventLogError; never anything else, never a hang."""
    buf = bytearray(log_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "append", "truncate"]))
        at = data.draw(st.integers(0, len(buf)))
        if op == "flip" and at < len(buf):
            buf[at] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[at:at + data.draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[at:]
        else:
            buf += data.draw(st.binary(max_size=32))
    path = tmp_path_factory.mktemp("fuzz") / "events.msgpack"
    path.write_bytes(bytes(buf))
    try:
        contents = read_log(path)
    except EventLogError:
        return
    assert all(isinstance(r, Record) for r in contents.records)
    # what reads without error is what was written: a prefix of the records
    assert contents.records == RECORDS[: len(contents.records)]


def test_a_schema_1_log_is_refused_saying_what_to_do(tmp_path, log_bytes):
    path = tmp_path / "events.msgpack"
    path.write_bytes(MAGIC[:-1] + b"\x01" + log_bytes[len(MAGIC):])
    with pytest.raises(EventLogError, match="schema-1 event log.*run the scenario again"):
        read_log(path)
    path.write_bytes(MAGIC[:-1] + bytes([COMPACT_MAGIC[-1] + 1]) + log_bytes[len(MAGIC):])  # newer than both
    with pytest.raises(EventLogError, match="newer than this package"):
        chain_digest(path)


def test_not_a_log_is_refused(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"hello world, not a log")
    with pytest.raises(EventLogError, match="not an event log"):
        read_log(path)


def _log(*objs) -> bytes:
    return MAGIC + b"".join(frame_bytes(i, msgpack.packb(o, use_bin_type=True)) for i, o in enumerate(objs))


HEADER = ["header", {"schema": LOG_SCHEMA, "package_version": "0", "config": {}, "seed": 0}]


@pytest.mark.parametrize("objs, words", [
    ((["footer", {}],), "frame 0: got a 'footer' record, expected the header"),
    ((HEADER, HEADER), "frame 1: got a second header"),
    ((HEADER, ["footer", {}], ["footer", {}]), "frame 2: bytes after the footer"),
    ((["header", {**HEADER[1], "schema": 1}],), "header of schema 1 in a schema-2 log"),
])
def test_the_header_comes_first_once_and_nothing_follows_the_footer(tmp_path, objs, words):
    path = tmp_path / "events.msgpack"
    path.write_bytes(_log(*objs))
    with pytest.raises(EventLogError, match=words):
        read_log(path)


def test_frames_out_of_sequence_are_corruption(tmp_path):
    path = tmp_path / "events.msgpack"
    b = frame_bytes(2, msgpack.packb(["footer", {}]))
    head = MAGIC + frame_bytes(0, msgpack.packb(HEADER, use_bin_type=True))
    path.write_bytes(head + b)  # frame 1 removed
    with pytest.raises(EventLogError, match="sequence number 2, expected 1"):
        read_log(path)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_a_well_framed_payload_that_is_not_a_record_is_an_error(tmp_path_factory, payload):
    """Frames whose checks hold, carrying garbage, non-arrays, unknown record types or trailing bytes."""
    path = tmp_path_factory.mktemp("junk") / "events.msgpack"
    header = frame_bytes(0, msgpack.packb(HEADER, use_bin_type=True))
    path.write_bytes(MAGIC + header + frame_bytes(1, payload) + frame_bytes(2, msgpack.packb(["footer", {}])))
    try:
        contents = read_log(path)
    except EventLogError:
        return
    assert contents.records[-1] == Footer({}) and all(isinstance(r, Record) for r in contents.records)


def test_a_key_file_that_is_empty_missing_or_a_directory_is_one_error_naming_it(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    for path, words in ((tmp_path / "empty", "is empty"), (tmp_path / "missing", "cannot be read"),
                        (tmp_path, "cannot be read")):
        with pytest.raises(EventLogError, match=words) as info:
            read_key_file(path)
        assert f"key file {path}:" in str(info.value)
    (tmp_path / "k").write_bytes(b"key\n")
    assert read_key_file(tmp_path / "k") == b"key\n"


def test_cutting_moves_the_bytes_aside_to_the_first_free_cut_file(tmp_path, log_bytes):
    path = tmp_path / "events.msgpack"
    path.write_bytes(log_bytes)
    starts = _starts(log_bytes)
    assert cut_log(path, starts[-1]) == (len(log_bytes) - starts[-1], tmp_path / "events.msgpack.cut-1")
    assert cut_log(path, starts[-2]) == (starts[-1] - starts[-2], tmp_path / "events.msgpack.cut-2")
    assert cut_log(path, starts[-2]) == (0, None)
    assert path.read_bytes() + (tmp_path / "events.msgpack.cut-2").read_bytes() \
        + (tmp_path / "events.msgpack.cut-1").read_bytes() == log_bytes
    with pytest.raises(EventLogError, match="cannot cut at byte"):
        cut_log(path, len(log_bytes))


def test_continuing_a_chain_with_or_without_a_key_other_than_it_was_begun_is_refused(tmp_path):
    path = tmp_path / "log"
    _write(path, RECORDS[:5], key=b"k")
    with pytest.raises(EventLogError, match="chain state is keyed, the writer unkeyed"):
        EventLogWriter(path, append=True, chain_state=chain_digest(path, b"k"))
    with pytest.raises(EventLogError, match="chain state is unkeyed, the writer keyed"):
        EventLogWriter(path, append=True, key=b"k", chain_state=chain_digest(path))


def test_the_search_for_the_next_intact_frame_stays_linear_on_a_file_of_fake_heads(tmp_path):
    """100,000 heads whose own CRC holds, each claiming a payload as long as the file: checking each one's
    payload would read 200 GB; the search gives up after twice the file's size."""
    fake = struct.pack("<4sIII", SYNC, 7, 2_100_000, 0)
    fake += struct.pack("<I", zlib.crc32(fake))
    path = tmp_path / "events.msgpack"
    path.write_bytes(MAGIC + b"\x00" * HEAD_SIZE + fake * 100_000)
    t0 = time.perf_counter()
    with pytest.raises(EventLogError, match="corrupt log at byte 8, frame 0: frame marker"):
        read_log(path)
    assert time.perf_counter() - t0 < 10
