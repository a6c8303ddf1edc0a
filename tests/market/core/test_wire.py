"""Wire format: exact round trips, and a decoder that only ever raises WireError."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.wire import (
    KINDS,
    MAX_DESCRIPTION_LEN,
    MAX_FRAME_BYTES,
    SCHEMA_VERSION,
    AdDescription,
    Bid,
    CallForBids,
    Field,
    WireError,
    decode,
    encode,
    encode_fields,
    pack_vector,
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
        (encode_fields("ad_description", 0, "x" * (MAX_DESCRIPTION_LEN + 1)), "description", "x" * 257),
        (encode_fields("ad_description", 0, b"bytes"), "description", b"bytes"),
        (encode_fields("ad_description", -1, "fine"), "query_id", -1),
    ],
)
def test_decode_error_names_field_and_value(frame, field, value):
    with pytest.raises(WireError) as err:
        decode(frame)
    assert err.value.field == field
    assert repr(value)[:20] in str(err.value) or str(value)[:20] in str(err.value)
    assert "expected" in str(err.value)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**63 - 1), st.text(max_size=MAX_DESCRIPTION_LEN))
def test_ad_descriptions_up_to_the_cap_round_trip_and_longer_ones_are_refused(query_id, text):
    assert decode(encode(AdDescription(query_id, text))) == AdDescription(query_id, text)
    longer = text + "x" * (MAX_DESCRIPTION_LEN + 1 - len(text))
    with pytest.raises(WireError, match=f"at most {MAX_DESCRIPTION_LEN} characters") as err:
        decode(encode(AdDescription(query_id, longer)))
    assert err.value.field == "description" and err.value.value == longer


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


def test_a_hundred_thousand_random_or_mutated_frames_raise_only_wire_error():
    """Seeded generator: valid frames of every kind, then bit flips, truncations, splices, random
    bytes and type-confused MessagePack; decode returns a message or raises WireError, nothing else."""
    import numpy as np

    rng = np.random.default_rng(20240601)
    seeds = [encode(m) for m in (
        Bid(3, 0.25), CallForBids(1, 2, (0.1, 0.2, 0.3), 4.0, "user"),
        *[KINDS[k](*[_sample(spec, rng) for _, spec in KINDS[k].fields]) for k in sorted(KINDS)],
    )]
    junk_values = [None, True, -1, 2**64 - 1, 1.5, float("nan"), float("inf"), "x" * 200, b"\x00" * 9, [], {}, [1.0]]
    decoded = refused = 0
    for i in range(100_000):
        base = bytearray(seeds[i % len(seeds)])
        how = i % 6
        if how == 0:
            for _ in range(int(rng.integers(1, 4))):
                base[int(rng.integers(len(base)))] ^= 1 << int(rng.integers(8))
        elif how == 1:
            base = base[: int(rng.integers(len(base)))]
        elif how == 2:
            other = seeds[int(rng.integers(len(seeds)))]
            base = base[: int(rng.integers(len(base) + 1))] + other[int(rng.integers(len(other))):]
        elif how == 3:
            base = bytearray(rng.bytes(int(rng.integers(0, 64))))
        elif how == 4:
            obj = msgpack.unpackb(bytes(base), use_list=True)
            obj[int(rng.integers(len(obj)))] = junk_values[int(rng.integers(len(junk_values)))]
            base = bytearray(msgpack.packb(obj, use_bin_type=True))
        else:
            base[int(rng.integers(len(base) + 1)):0] = rng.bytes(int(rng.integers(1, 8)))
        try:
            decode(bytes(base))
            decoded += 1
        except WireError:
            refused += 1
    assert decoded + refused == 100_000 and refused > 50_000


def _sample(spec: Field, rng):
    t = spec.type
    if t == "int":
        return int(rng.integers(0, 1000))
    if t == "float":
        return float(max(spec.lo, min(spec.hi, rng.uniform(0, 10))))
    if t == "bool":
        return bool(rng.integers(2))
    if t == "text":
        return "abc"
    if t == "vector":
        return tuple(rng.uniform(0, 1, 4).tolist())
    if t == "ints":
        return (1, 2, 3)
    return ((1, 2), (3,))
