"""MessageSent.message(): observers get the bus's decoded message, never part of the record's fields or bytes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from market.core.wire import Bid, WireError, encode
from market.runtime.bus import Bus
from market.runtime.kernel import VirtualTimeLoop
from market.runtime.records import MessageSent, decode_record, encode_record


def test_the_bus_hands_observers_the_message_it_decoded() -> None:
    seen: list[MessageSent] = []
    loop = VirtualTimeLoop()
    try:
        bus = Bus(loop, np.random.default_rng(0), limit=None, record=seen.append)
        bus.register("auctioneer")
        port = bus.register("p0")
        assert port.send("auctioneer", Bid(7, 0.25))
        (rec,) = seen
        delivered = bus._ports["auctioneer"].recv_nowait()
        assert delivered is not None
        assert rec.message() is delivered.msg  # the same object: no second decoding
        assert rec.message() == Bid(7, 0.25)
    finally:
        loop.close()


def test_the_message_is_not_a_field_of_the_record() -> None:
    frame = encode(Bid(3, 1.5))
    plain = MessageSent(1.0, "p0", "auctioneer", "bid", frame)
    attached = MessageSent(1.0, "p0", "auctioneer", "bid", frame).attach_message(Bid(3, 1.5))
    assert plain == attached and hash(plain) == hash(attached)
    assert encode_record(attached) == ["msg", 1.0, "p0", "auctioneer", "bid", frame]
    read = decode_record(encode_record(attached))
    assert read.message() == Bid(3, 1.5) and read.message() is read.message()  # decoded once, then kept
    copy = pickle.loads(pickle.dumps(attached))
    assert copy == attached and copy.message() == Bid(3, 1.5)
    with pytest.raises(AttributeError):
        attached.t = 2.0  # still frozen


def test_a_frame_that_does_not_decode_raises_as_decode_does() -> None:
    with pytest.raises(WireError):
        MessageSent(1.0, "p0", "auctioneer", "bid", b"\xc1").message()
