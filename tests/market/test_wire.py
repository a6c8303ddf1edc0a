"""Wire format: exact round trips, and a decoder that only ever raises WireError."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.wire import (
    KINDS, MAX_FRAME_BYTES, SCHEMA_VERSION, Bid, CallForBids, Field, WireError, decode, encode,
    encode_fields, pack_vector,
)


def field_values(spec: Field) -> st.SearchStrategy:
    t = spec.type
    if t == "int":
        return st.integers(int(spec.lo), int(min(spec.hi, 2**63 - 1)))
    if t == "float":
        return st.floats(spec.lo, spec.hi, allow_nan=False, allow_infinity=False)
    if t == "bool":
        return st.booleans()
    if t == "text":
        return st.text(max_size=min(spec.max_len, 40))
    if t == "vector":
        return st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=12).map(tuple)
    if t == "ints":
        return st.lists(st.integers(int(spec.lo), int(spec.hi)), max_size=12).map(tuple)
    if t == "int_rows":
        return st.lists(st.lists(st.integers(0, 2**31 - 1), max_size=6).map(tuple), max_size=6).map(tuple)
    raise AssertionError(t)


messages = st.sampled_from(sorted(KINDS)).flatmap(
    lambda kind: st.builds(KINDS[kind], *[field_values(spec) for _, spec in KINDS[kind].fields])
)


@settings(max_examples=400, deadline=None)
@given(messages)
def test_every_message_kind_round_trips_exactly(msg):
    data = encode(msg)
    assert isinstance(data, bytes)
    back = decode(data)
    assert type(back) is type(msg)
    assert back == msg


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_wire_error(data):
    try:
        decode(data)
    except WireError:
        pass


@settings(max_examples=600, deadline=None)
@given(messages, st.data())
def test_mutated_frames_raise_only_wire_error(msg, data):
    frame = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and frame:
            i = data.draw(st.integers(0, len(frame) - 1))
            frame[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut" and frame:
            frame = frame[: data.draw(st.integers(0, len(frame) - 1))]
        else:
            i = data.draw(st.integers(0, len(frame)))
            frame[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        decode(bytes(frame))
    except WireError:
        pass


@pytest.mark.parametrize(
    "frame, field, value",
    [
        (encode_fields("bid", 1, math.nan), "amount", math.nan),
        (encode_fields("bid", 1, -0.5), "amount", -0.5),
        (encode_fields("bid", 1, "0.5"), "amount", "0.5"),
        (encode_fields("bid", 1, True), "amount", True),
        (encode_fields("bid", -3, 0.5), "round", -3),
        (encode_fields("bid", 1.5, 0.5), "round", 1.5),
        (encode_fields("nope", 1), "kind", "nope"),
        (msgpack.packb([SCHEMA_VERSION + 1, "bid", 1, 0.5]), "schema", SCHEMA_VERSION + 1),
        (encode_fields("call_for_bids", 0, 0, pack_vector([1.0, math.inf]), 1.0, "u"), "context[1]", math.inf),
        (encode_fields("call_for_bids", 0, 0, [1.0, 2.0], 1.0, "u"), "context", (1.0, 2.0)),
    ],
)
def test_decode_error_names_field_and_value(frame, field, value):
    with pytest.raises(WireError) as err:
        decode(frame)
    assert err.value.field == field
    assert repr(value)[:20] in str(err.value) or str(value)[:20] in str(err.value)
    assert "expected" in str(err.value)


def test_oversize_frame_is_refused_before_parsing():
    big = encode_fields("bid", 1, 0.5) + b"\x00" * MAX_FRAME_BYTES
    with pytest.raises(WireError, match="at most"):
        decode(big)


def test_wrong_field_count_is_refused():
    with pytest.raises(WireError, match="2 fields"):
        decode(msgpack.packb([SCHEMA_VERSION, "bid", 1]))


def test_messages_are_frozen_and_slotted():
    b = Bid(1, 0.5)
    with pytest.raises(AttributeError):
        b.amount = 0.1  # type: ignore[misc]
    assert not hasattr(b, "__dict__")
    c = CallForBids(0, 0, (0.5, 0.25), 1.0, "user")
    assert decode(encode(c)).context == (0.5, 0.25)
