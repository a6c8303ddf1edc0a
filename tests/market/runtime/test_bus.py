"""Bus: identity bound to ports, sealed delivery, broadcast, links with latency and seeded loss."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from market.core.wire import Bid, CallForBids, Error, Feedback, encode_fields
from market.runtime.bus import BUS_ID, Bus, BusError, star_graph
from market.runtime.kernel import run


def make_bus(graph=None, seed=0, **kw):
    loop = asyncio.get_running_loop()
    return Bus(loop, np.random.default_rng(seed), graph=graph, record=None, **kw)


def test_sender_is_the_port_never_the_frame():
    async def main():
        bus = make_bus()
        hub = bus.register("auctioneer")
        mallory = bus.register("mallory")
        bus.register("alice")
        mallory.send("auctioneer", Bid(0, 0.5))
        env = await hub.recv()
        assert env.src == "mallory"
        # a frame cannot carry a sender: an extra field is a malformed frame
        assert not mallory.send_bytes("auctioneer", encode_fields("bid", 0, 0.5, "alice"))
        err = await mallory.recv()
        assert err.src == BUS_ID and isinstance(err.msg, Error) and err.msg.code == "malformed"
        assert hub.pending() == 0

    run(main())


def test_sealed_kinds_only_reach_the_auctioneer():
    async def main():
        bus = make_bus()
        bus.register("auctioneer", ("providers",))
        p1 = bus.register("p1", ("providers",))
        p2 = bus.register("p2", ("providers",))
        assert not p1.send("p2", Bid(0, 0.3))
        assert not p1.broadcast("providers", Bid(0, 0.3))
        assert p2.pending() == 0
        codes = [(await p1.recv()).msg.code for _ in range(2)]
        assert codes == ["sealed", "sealed"]

    run(main())


def test_unknown_destination_is_refused_with_an_error():
    async def main():
        bus = make_bus()
        a = bus.register("a")
        assert not a.send("ghost", Feedback(0, 1.0))
        env = await a.recv()
        assert env.msg.code == "unknown_agent" and "ghost" in env.msg.detail

    run(main())


def test_broadcast_reaches_every_member_but_the_sender():
    async def main():
        bus = make_bus()
        hub = bus.register("auctioneer")
        ps = [bus.register(f"p{i}", ("providers",)) for i in range(5)]
        hub.broadcast("providers", CallForBids(3, 3, (0.1, 0.2), 1.0, "u"))
        for p in ps:
            env = await p.recv()
            assert env.msg.round == 3 and env.src == "auctioneer"
        with pytest.raises(BusError, match="unknown group"):
            hub.broadcast("nobody", CallForBids(3, 3, (), 1.0, "u"))

    run(main())


def test_latency_delays_delivery_to_the_right_instant():
    async def main():
        g = star_graph("auctioneer", ["a", "b"], latency=0.25)
        bus = make_bus(g)
        hub = bus.register("auctioneer")
        a = bus.register("a")
        b = bus.register("b")
        a.send("auctioneer", Feedback(0, 1.0))
        env = await hub.recv()
        assert env.t == 0.25
        a.send("b", Feedback(1, 1.0))  # two hops through the hub
        env = await b.recv()
        assert env.t == 0.75

    run(main())


def _loss_pattern(seed):
    async def main():
        g = star_graph("auctioneer", ["a"], loss=0.3, jitter=0.1)
        bus = make_bus(g, seed, limit=None)  # 200 frames at one instant: the loss pattern, not the budget
        hub = bus.register("auctioneer")
        a = bus.register("a")
        for i in range(200):
            a.send("auctioneer", Feedback(i, 0.0))
        got = []
        while True:
            try:
                env = await hub.recv(timeout=1.0)
            except TimeoutError:
                break
            got.append((env.msg.round, env.t))
        return got, bus.dropped

    return run(main())


def test_loss_and_jitter_come_from_the_bus_seed():
    got, dropped = _loss_pattern(1)
    assert got == _loss_pattern(1)[0]
    assert got != _loss_pattern(2)[0]
    assert len(got) + dropped == 200
    assert 30 <= dropped <= 90  # 30% loss of 200 frames, > 4 standard deviations either side
    assert all(0.0 <= t <= 0.1 for _, t in got)


def test_recv_timeout_raises_after_the_simulated_wait():
    async def main():
        bus = make_bus()
        a = bus.register("a")
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await a.recv(timeout=2.0)
        assert loop.time() == 2.0

    run(main())


def test_ids_cannot_be_registered_twice_or_impersonate_the_bus():
    async def main():
        bus = make_bus()
        bus.register("a")
        with pytest.raises(BusError):
            bus.register("a")
        with pytest.raises(BusError):
            bus.register(BUS_ID)

    run(main())


def test_multicasts_to_drawn_invitees_keep_the_route_cache_bounded(monkeypatch):
    import market.runtime.bus as bus_module

    monkeypatch.setattr(bus_module, "ROUTE_CACHE", 8)

    async def main():
        bus = make_bus()
        hub = bus.register("auctioneer")
        ps = [bus.register(f"p{i}") for i in range(6)]
        rng = np.random.default_rng(1)
        sent = 0
        for k in range(40):  # a new set of invitees almost every time, as with a cap on bidders per auction
            picked = tuple(f"p{i}" for i in sorted(rng.choice(6, size=3, replace=False)))
            assert hub.multicast(picked, CallForBids(k, k, (0.1, 0.2), 1.0, "u"))
            sent += 1
            assert len(bus._routes) <= 8
        got = [(await p.recv()).msg.round for p in ps for _ in range(p.pending())]
        assert len(got) == 3 * sent  # every invitee got its frame: dropping cached routes loses nothing

    run(main())
