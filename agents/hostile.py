"""Hostile agents: each attacks the market's plumbing every ``period`` simulated seconds, and every
attempt must fail, be logged with its id as offender, and change no outcome.

They never hold a provider's or a user's id, so the mechanism never counts them. Each keeps what it
managed to receive (``received``: kind -> count) so tests can check that nothing sealed leaked.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgpack

from market.core.registry import Registry
from market.core.wire import (
    MAX_FRAME_BYTES,
    SCHEMA_VERSION,
    Bid,
    Error,
    Feedback,
    Query,
    RewardReport,
    encode,
    encode_fields,
    pack_vector,
)
from market.runtime.agent import Agent
from market.runtime.bus import Envelope


class Hostile(Agent):
    """Reads everything it is sent; attacks at ``start``, ``start + period``, ..."""

    def __init__(self, agent_id: str, *, period: float = 10.0, start: float = 0.25,
                 auctioneer: str = "auctioneer", victims: tuple[str, ...] = ()) -> None:
        super().__init__(agent_id)
        self.period = float(period)
        self.next_at = float(start)
        self.auctioneer = auctioneer
        self.victims = victims  # ids it tries to pass for, or to reach
        self.attempts = 0
        self.received: Counter = Counter()
        self.refusals: Counter = Counter()  # error codes it was sent back

    async def run(self) -> None:
        while True:
            try:
                env = await self.port.recv(until=self.next_at)
            except TimeoutError:
                self.attack()
                self.attempts += 1
                self.next_at += self.period
                continue
            self.received[env.msg.kind] += 1
            if type(env.msg) is Error:
                self.refusals[env.msg.code] += 1
            self.overhear(env)

    def attack(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement attack()")

    def overhear(self, env: Envelope) -> None:
        """What the agent does with a frame it received (most just count it)."""

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "next_at": self.next_at, "attempts": self.attempts,
                "received": dict(self.received), "refusals": dict(self.refusals)}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.next_at, self.attempts = state["next_at"], state["attempts"]
        self.received, self.refusals = Counter(state["received"]), Counter(state["refusals"])


class Impersonator(Hostile):
    """Tries to speak as someone else: a frame naming another sender, feedback for the user's
    rounds, a query in the user's name, a bid in a provider's name."""

    def attack(self) -> None:
        victim = self.victims[self.attempts % len(self.victims)] if self.victims else "user"
        r = self.attempts
        # a sender field inside the frame: the bus sees an extra field, a malformed frame
        self.port.send_bytes(self.auctioneer, encode_fields("bid", r, 0.0, victim))
        self.port.send_bytes(self.auctioneer, msgpack.packb([SCHEMA_VERSION, "feedback", r, 1e6, victim]))
        self.send(self.auctioneer, Feedback(r, 1e6))  # the round is not ours: "not_owner" / "unknown_round"
        self.send(self.auctioneer, Query(r, (0.5,) * 8))  # not a user of the market
        self.send(self.auctioneer, Bid(r, 0.0))  # not a provider of the market


class Eavesdropper(Hostile):
    """Joins the providers' group and listens; tries to make sealed bids and reward reports reach
    itself or another provider, and asks the auctioneer for others' bids by bidding itself."""

    groups = ("providers",)

    def attack(self) -> None:
        r = self.attempts
        for victim in self.victims:
            self.send(victim, Bid(r, 0.5))  # sealed: only the auctioneer may receive it
        self.send(self.id, Bid(r, 0.5))
        self.send(self.id, RewardReport(r, (1.0,)))
        self.broadcast("providers", Bid(r, 0.5))
        self.send(self.auctioneer, Bid(r, 0.5))  # answered with an error, never with others' bids


class Replayer(Hostile):
    """Captures the frames it receives and re-sends them later, to the auctioneer and to providers
    (who accept calls for bids only from the auctioneer's port)."""

    groups = ("providers",)

    def __init__(self, agent_id: str, **kw: Any) -> None:
        super().__init__(agent_id, **kw)
        self.captured: list[bytes] = []

    def overhear(self, env: Envelope) -> None:
        self.captured.append(encode(env.msg))
        del self.captured[:-8]  # the latest few are enough to replay

    def attack(self) -> None:
        for frame in self.captured:
            self.port.send_bytes(self.auctioneer, frame)
            for victim in self.victims:
                self.port.send_bytes(victim, frame)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "captured": list(self.captured)}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.captured = list(state["captured"])


class Flooder(Hostile):
    """Sends ``burst`` frames to the auctioneer at every attack: the rate limit refuses the excess."""

    def __init__(self, agent_id: str, *, burst: int = 200, **kw: Any) -> None:
        super().__init__(agent_id, **kw)
        self.burst = int(burst)

    def attack(self) -> None:
        for i in range(self.burst):
            self.send(self.auctioneer, Feedback(i, 1.0))


class Garbler(Hostile):
    """Sends frames no honest sender would: garbage, oversize, NaN and infinite numbers, unknown
    kinds, wrong schema versions, truncated MessagePack."""

    def attack(self) -> None:
        dst = self.auctioneer
        nan_context = pack_vector([0.5, float("nan"), 0.5])
        frames = [
            self.rng.bytes(int(self.rng.integers(1, 64))),
            b"\x00" * (MAX_FRAME_BYTES + 1),
            encode_fields("bid", 0, float("nan")),
            encode_fields("bid", 0, float("inf")),
            encode_fields("bid", -1, 0.5),
            encode_fields("feedback", 0, float("nan")),
            encode_fields("query", 0, nan_context),
            encode_fields("launch_missiles", 0),
            msgpack.packb([SCHEMA_VERSION + 1, "bid", 0, 0.5]),
            encode(Bid(0, 0.5))[:-3],
        ]
        for frame in frames:
            self.port.send_bytes(dst, frame)


HOSTILES: Registry[Hostile] = Registry("hostile agent", {
    "impersonator": Impersonator, "eavesdropper": Eavesdropper, "replayer": Replayer,
    "flooder": Flooder, "garbler": Garbler,
})


def add_hostiles(world: Any, table: dict[str, Any], providers: tuple[str, ...]) -> list[Hostile]:
    """Add the hostile agents a scenario's ``[hostile]`` table names (``agents``, ``period``, ``flood``)."""
    from market.runtime.config import ConfigError

    added = []
    for i, name in enumerate(table["agents"]):
        if name not in HOSTILES:
            raise ConfigError(f"hostile.agents[{i}]: {HOSTILES.unknown(name)}")
        cls = HOSTILES.get(name)
        if not table["period"] > 0:
            raise ConfigError(f"hostile.period: got {table['period']!r}, expected > 0 simulated seconds")
        kw: dict[str, Any] = {"period": table["period"], "start": 0.25 + 0.01 * i,
                              "auctioneer": world.auctioneer_id, "victims": tuple(providers)}
        if cls is Flooder:
            kw["burst"] = table["flood"]
        added.append(world.add(cls(f"hostile-{name}", **kw)))
    return added
