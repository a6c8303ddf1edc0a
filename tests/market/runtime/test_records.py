"""Event-log records: the on-disk layout of each type, the codec's round trip, and its refusals."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.runtime.eventlog import MAGIC, EventLogError, frame_bytes, iter_frames, read_log
from market.runtime.records import (
    LOG_SCHEMA,
    RECORD_TYPES,
    RECORDS,
    AgentFault,
    Checkpoint,
    Expired,
    FeedbackAccepted,
    Footer,
    Header,
    LedgerTransfer,
    MessageDropped,
    MessageSent,
    Record,
    Rejected,
    RoundClosed,
    decode_record,
    encode_record,
    record,
)

# The layouts schema 1 has always written: the codec must give exactly these lists (so the same bytes).
LAYOUTS = [
    (Header(1, "0.1.0", {"run": {"seed": 3}}, 3),
     ["header", {"schema": 1, "package_version": "0.1.0", "config": {"run": {"seed": 3}}, "seed": 3}]),
    (MessageSent(1.5, "user", "auctioneer", "query", b"\x94"), ["msg", 1.5, "user", "auctioneer", "query", b"\x94"]),
    (MessageDropped(2.0, "a", "b", "bid", "loss"), ["drop", 2.0, "a", "b", "bid", "loss"]),
    (LedgerTransfer(0.0, "external", "user", 10**12, "opening balance"),
     ["xfer", 0.0, "external", "user", 10**12, "opening balance"]),
    (RoundClosed(3.5, 3, 7, "provider-1", (0, 250_000), {"present": [True, True]}),
     ["round", 3.5, 3, 7, "provider-1", [0, 250_000], {"present": [True, True]}]),
    (Rejected(4.0, "x", "late", "round", "bid for round 2 arrived after it closed"),
     ["reject", 4.0, "x", "late", "round", "bid for round 2 arrived after it closed"]),
    (FeedbackAccepted(5.0, 3, "user", 1.25), ["feedback", 5.0, 3, "user", 1.25]),
    (Expired(66.0, 4, "user", "feedback"), ["expire", 66.0, 4, "user", "feedback"]),
    (AgentFault(5.5, "provider-2", "crash"), ["fault", 5.5, "provider-2", "crash"]),
    (Checkpoint(6.0, {"ledger": {"user": 1}}), ["ckpt", 6.0, {"ledger": {"user": 1}}]),
    (Footer({"rounds": 10}), ["footer", {"rounds": 10}]),
]


def test_the_layouts_cover_every_record_type():
    assert [type(rec).record_type for rec, _ in LAYOUTS] == list(RECORD_TYPES)
    assert {type(rec) for rec, _ in LAYOUTS} == set(RECORDS.values())


@pytest.mark.parametrize("rec, layout", LAYOUTS, ids=[lay[0] for _, lay in LAYOUTS])
def test_each_record_encodes_to_its_schema_1_layout_and_back(rec, layout):
    assert encode_record(rec) == layout
    packer = msgpack.Packer(use_bin_type=True)
    assert packer.pack(encode_record(rec)) == packer.pack(layout)
    assert decode_record(layout) == rec


# --- round trip over generated records ---------------------------------------------------------

_plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_BY_ANNOTATION = {
    "float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**64 - 1),
    "int": st.integers(-(2**63), 2**64 - 1),
    "str": st.text(max_size=16),
    "bytes": st.binary(max_size=32),
    "dict[str, Any]": st.dictionaries(st.text(max_size=8), _plain, max_size=4),
    "tuple[int, ...]": st.lists(st.integers(-(2**63), 2**64 - 1), max_size=6).map(tuple),
}


def _records_of(cls: type) -> st.SearchStrategy:
    args = {f.name: _BY_ANNOTATION[f.type] for f in dataclasses.fields(cls)}
    if cls is Header:
        args["schema"] = st.integers(1, LOG_SCHEMA)
    return st.builds(cls, **args)


any_record = st.one_of([_records_of(cls) for cls in RECORDS.values()])


@settings(max_examples=500, deadline=None)
@given(any_record)
def test_decode_of_the_packed_encoding_is_the_same_record_and_re_encodes_to_the_same_bytes(rec):
    packed = msgpack.packb(encode_record(rec), use_bin_type=True)
    obj = msgpack.unpackb(packed, raw=False, use_list=True, strict_map_key=False)
    back = decode_record(obj)
    assert back == rec and type(back) is type(rec)
    assert encode_record(back) == obj
    assert msgpack.packb(encode_record(back), use_bin_type=True) == packed


def test_an_int_time_stays_an_int_so_that_re_encoding_keeps_the_bytes():
    rec = decode_record(["fault", 3, "p", "crash"])
    assert type(rec.t) is int and encode_record(rec) == ["fault", 3, "p", "crash"]


def test_records_are_immutable_values_without_a_dict():
    rec = LedgerTransfer(0.0, "a", "b", 5, "payment")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.amount_minor = 6
    assert not hasattr(rec, "__dict__")
    assert dataclasses.replace(rec, amount_minor=6) == LedgerTransfer(0.0, "a", "b", 6, "payment")


def test_only_frozen_slotted_dataclasses_without_defaults_can_be_record_types():
    @dataclasses.dataclass
    class Loose(Record):
        t: float

    with pytest.raises(TypeError, match="frozen, slotted dataclass"):
        record("loose")(Loose)
    assert "loose" not in RECORDS

    @dataclasses.dataclass(frozen=True, slots=True)
    class Defaulted(Record):
        t: float = 0.0

    with pytest.raises(TypeError, match="no defaults"):
        record("defaulted")(Defaulted)
    assert "defaulted" not in RECORDS


# --- refusals ------------------------------------------------------------------------------------

_HEADER = {"schema": 1, "package_version": "0.1.0", "config": {}, "seed": 0}


@pytest.mark.parametrize("obj, words", [
    (["xfer", 0.0, "a", "b", 1.5, "memo"], ["'xfer' record", "'amount_minor'", "1.5", "an integer"]),
    (["xfer", 0.0, "a", "b", True, "memo"], ["'xfer' record", "'amount_minor'", "True", "an integer"]),
    (["feedback", float("inf"), 1, "user", 1.0], ["'feedback' record", "'t'", "inf", "a finite number"]),
    (["feedback", 1.0, 1, "user", float("nan")], ["'feedback' record", "'reward'", "nan", "a finite number"]),
    (["reject", 0.0, 7, "late", "round", "d"], ["'reject' record", "'offender'", "7", "a string"]),
    (["msg", 0.0, "a", "b", "bid", "not bytes"], ["'msg' record", "'frame'", "'not bytes'", "bytes"]),
    (["round", 0.0, 1, 2, "", [1, "x"], {}], ["'round' record", "'payments_minor[1]'", "'x'", "an integer"]),
    (["round", 0.0, 1, 2, "", 5, {}], ["'round' record", "'payments_minor'", "5", "an array of integers"]),
    (["ckpt", 0.0, [1, 2]], ["'ckpt' record", "'state'", "[1, 2]", "a map"]),
    (["msg", 0.0, "a", "b", "bid"], ["'msg' record", "got 4 fields", "expected 5", "'frame'"]),
    (["footer", {}, {}], ["'footer' record", "got 2 fields", "expected 1", "'summary'"]),
    (["header", {"schema": 1, "seed": 0}], ["'header' record", "'seed'", "'package_version'", "the keys"]),
    (["header", [1, "0.1.0", {}, 0]], ["'header' record", "one map"]),
    (["header", {**_HEADER, "schema": 0}], ["'header' record", "'schema'", "got 0", f"[1, {LOG_SCHEMA}]"]),
    (["header", {**_HEADER, "seed": "0"}], ["'header' record", "'seed'", "'0'", "an integer"]),
    (["snapshot", 1.0], ["record type 'snapshot'", "'header'", "'footer'"]),
    ("footer", ["got 'footer'", "expected a record"]),
    ([], ["got []", "expected a record"]),
    ([3, 1.0], ["got [3, 1.0]", "expected a record"]),
])
def test_decode_refuses_what_does_not_fit_naming_the_record_type_the_field_and_the_value(obj, words):
    with pytest.raises(EventLogError) as info:
        decode_record(obj)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def _frame(obj, seq: int) -> bytes:
    return frame_bytes(seq, msgpack.packb(obj, use_bin_type=True))


def test_a_log_of_a_newer_schema_is_refused_with_the_version_it_needs(tmp_path):
    path = tmp_path / "events.msgpack"
    path.write_bytes(MAGIC + _frame(["header", {**_HEADER, "schema": LOG_SCHEMA + 1}], 0) + _frame(["footer", {}], 1))
    with pytest.raises(EventLogError) as info:
        read_log(path)
    text = str(info.value)
    assert str(path) in text and "byte 8" in text and "'schema'" in text and f"got {LOG_SCHEMA + 1}" in text
    assert f"at most {LOG_SCHEMA}" in text and "newer version of the package" in text
    with pytest.raises(EventLogError, match="newer version"):
        next(iter_frames(path))


def test_a_bad_record_in_a_log_is_reported_with_its_offset(tmp_path):
    path = tmp_path / "events.msgpack"
    first = _frame(["header", {**_HEADER, "schema": LOG_SCHEMA}], 0)
    path.write_bytes(MAGIC + first + _frame(["xfer", 0.0, "a", "b", "ten", "memo"], 1))
    with pytest.raises(EventLogError) as info:
        read_log(path)
    assert f"frame at byte {len(MAGIC) + len(first)}" in str(info.value)
    assert "'xfer' record, field 'amount_minor': got 'ten', expected an integer" in str(info.value)
