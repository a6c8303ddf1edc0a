"""The market bus: ports bound to agent ids, MessagePack frames on every hop, links with latency and loss.

An agent only ever holds its own ``Port``: the sender of every frame is the port's id, never a
field of the frame, so no agent can speak for another. Sealed kinds (bids, reward reports) may
only go to the auctioneer. Links come from a networkx graph whose edges carry ``latency``,
``jitter`` and ``loss``; the random draws come from the bus's own generator.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

import networkx as nx
import numpy as np

from .wire import Error, Message, WireError, decode, encode

BUS_ID = "bus"


class BusError(ValueError):
    """A use of the bus that cannot be honoured (unknown agent, id taken, bad link parameters)."""


class Envelope(NamedTuple):
    """A delivered message: who sent it (from the sender's port), when it arrived, what it says."""

    src: str
    t: float
    msg: Message
    seq: int


class Link(NamedTuple):
    latency: float
    jitter: float
    loss: float


_PERFECT = Link(0.0, 0.0, 0.0)


def star_graph(hub: str, spokes: Iterable[str], **link: float) -> nx.Graph:
    """The default topology: every agent linked to the auctioneer, with the same link parameters."""
    g = nx.Graph()
    g.add_node(hub)
    for s in spokes:
        g.add_edge(hub, s, **link)
    return g


class Port:
    """An agent's only handle on the bus: sends as ``self.id``, receives its own inbox."""

    __slots__ = ("id", "_bus", "_inbox", "_waiter", "_seq", "_loop")

    def __init__(self, bus: Bus, agent_id: str) -> None:
        self.id = agent_id
        self._bus = bus
        self._inbox: deque[Envelope] = deque()
        self._waiter: asyncio.Future | None = None
        self._seq = 0
        self._loop = bus.loop

    def send(self, dst: str, msg: Message) -> bool:
        """Send ``msg`` to agent ``dst``; False if the bus refused it (the reason comes back as an Error)."""
        return self._bus._send(self, (dst,), encode(msg), dst)

    def send_bytes(self, dst: str, data: bytes) -> bool:
        """Send a raw frame (it is decoded and validated like any other)."""
        return self._bus._send(self, (dst,), data, dst)

    def broadcast(self, group: str, msg: Message) -> bool:
        """Send ``msg`` to every member of ``group`` (except the sender): one frame, many deliveries."""
        return self._bus._send(self, self._bus.members(group), encode(msg), f"group:{group}")

    def multicast(self, dsts: tuple[str, ...], msg: Message) -> bool:
        """Send one frame to an explicit list of agents."""
        return self._bus._send(self, dsts, encode(msg), ",".join(dsts))

    def pending(self) -> int:
        return len(self._inbox)

    async def recv(self, timeout: float | None = None) -> Envelope:
        """Next envelope; raises ``TimeoutError`` after ``timeout`` simulated seconds without one."""
        if not self._inbox:
            await self._wait(timeout)
        return self._inbox.popleft()

    def recv_nowait(self) -> Envelope | None:
        return self._inbox.popleft() if self._inbox else None

    async def _wait(self, timeout: float | None) -> None:
        fut = self._loop.create_future()
        self._waiter = fut
        handle = None
        if timeout is not None:
            if timeout <= 0:
                self._waiter = None
                raise TimeoutError
            handle = self._loop.call_at(self._loop.time() + timeout, _expire, fut)
        try:
            await fut
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    def _deliver(self, env: Envelope) -> None:
        self._inbox.append(env)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class Bus:
    """Routes frames between ports. ``record`` (if given) receives one log record per send."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rng: np.random.Generator,
        *,
        auctioneer: str = "auctioneer",
        graph: nx.Graph | None = None,
        record: Callable[[list], None] | None = None,
    ) -> None:
        self.loop = loop
        self.rng = rng
        self.auctioneer = auctioneer
        self.graph = graph
        self._record = record
        self._ports: dict[str, Port] = {}
        self._groups: dict[str, tuple[str, ...]] = {}
        self._links: dict[tuple[str, str], Link] = {}
        self._routes: dict[tuple[str, str], tuple] = {}
        self._sealed_dsts = (auctioneer,)
        self.sent = 0
        self.delivered = 0
        self.rejected = 0
        self.dropped = 0

    # -- membership ------------------------------------------------------------------------
    def register(self, agent_id: str, groups: Iterable[str] = ()) -> Port:
        if not isinstance(agent_id, str) or not agent_id or agent_id == BUS_ID or agent_id.startswith("group:"):
            raise BusError(f"agent_id: got {agent_id!r}, expected a non-empty name other than {BUS_ID!r}")
        if agent_id in self._ports:
            raise BusError(f"agent_id: {agent_id!r} is already registered")
        port = Port(self, agent_id)
        self._ports[agent_id] = port
        for g in groups:
            self._groups[g] = (*self._groups.get(g, ()), agent_id)
        self._links.clear()
        self._routes.clear()
        return port

    def members(self, group: str) -> tuple[str, ...]:
        try:
            return self._groups[group]
        except KeyError:
            raise BusError(f"group: unknown group {group!r}; known: {sorted(self._groups)}") from None

    def agents(self) -> tuple[str, ...]:
        return tuple(self._ports)

    # -- links -----------------------------------------------------------------------------
    def link(self, src: str, dst: str) -> Link:
        key = (src, dst)
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = self._path_link(src, dst)
        return link

    def _path_link(self, src: str, dst: str) -> Link:
        g = self.graph
        if g is None:
            return _PERFECT
        if src not in g or dst not in g:
            raise BusError(f"link: no route from {src!r} to {dst!r}: not both in the link graph")
        try:
            path = nx.shortest_path(g, src, dst, weight="latency")
        except nx.NetworkXNoPath:
            raise BusError(f"link: no route from {src!r} to {dst!r} in the link graph") from None
        latency = jitter = 0.0
        keep = 1.0
        for a, b in zip(path, path[1:]):
            e = g.edges[a, b]
            latency += float(e.get("latency", 0.0))
            jitter += float(e.get("jitter", 0.0))
            keep *= 1.0 - float(e.get("loss", 0.0))
        if latency < 0 or jitter < 0 or not 0.0 <= keep <= 1.0:
            raise BusError(f"link: bad parameters on the route {src!r} -> {dst!r}: {latency=}, {jitter=}")
        if latency == 0.0 and jitter == 0.0 and keep == 1.0:
            return _PERFECT
        return Link(latency, jitter, 1.0 - keep)

    # -- sending ---------------------------------------------------------------------------
    def _send(self, port: Port, dsts: tuple[str, ...], data: bytes, dst_label: str) -> bool:
        src = port.id
        try:
            msg = decode(data)
        except WireError as exc:
            self._refuse(port, "malformed", exc.field, str(exc))
            return False
        if msg.sealed and dsts != self._sealed_dsts:
            self._refuse(port, "sealed", "dst", f"{msg.kind} may only be sent to {self.auctioneer!r}")
            return False
        route = self._routes.get((src, dst_label))
        if route is None:
            route = self._route(port, dsts, dst_label)
            if route is None:
                return False
        port._seq += 1
        self.sent += 1
        now = self.loop.time()
        if self._record is not None:
            self._record(["msg", now, src, dst_label, msg.kind, data])
        env = Envelope(src, now, msg, port._seq)
        for target, link in route:
            if link is None:
                target._inbox.append(env)
                w = target._waiter
                if w is not None and not w.done():
                    w.set_result(None)
                self.delivered += 1
            else:
                self._transmit(env, target.id, link, now)
        return True

    def _route(self, port: Port, dsts: tuple[str, ...], label: str) -> tuple | None:
        """Resolve recipients and links once per (sender, destination); None if one is unknown."""
        ports = self._ports
        for dst in dsts:
            if dst not in ports:
                self._refuse(port, "unknown_agent", "dst", f"no agent {dst!r} on the bus")
                return None
        route = []
        for dst in dsts:
            if dst == port.id:
                continue
            link = self.link(port.id, dst)
            route.append((ports[dst], None if link is _PERFECT else link))
        route = tuple(route)
        self._routes[(port.id, label)] = route
        return route

    def _transmit(self, env: Envelope, dst: str, link: Link, now: float) -> None:
        if link.loss and self.rng.random() < link.loss:
            self.dropped += 1
            if self._record is not None:
                self._record(["drop", now, env.src, dst, env.msg.kind, "loss"])
            return
        delay = link.latency
        if link.jitter:
            delay += link.jitter * self.rng.random()
        if delay <= 0.0:
            self.delivered += 1
            self._ports[dst]._deliver(env)
            return
        self.loop.call_at(now + delay, self._arrive, dst, env)

    def _arrive(self, dst: str, env: Envelope) -> None:
        self.delivered += 1
        self._ports[dst]._deliver(env._replace(t=self.loop.time()))

    def _refuse(self, port: Port, code: str, field: str, detail: str) -> None:
        """Log a refused frame with its sender and tell the sender why (the bus never raises)."""
        now = self.loop.time()
        self.rejected += 1
        if self._record is not None:
            self._record(["reject", now, port.id, code, field, detail])
        reply = Error(code, field[:128], detail[:1024])
        port._deliver(Envelope(BUS_ID, now, reply, 0))

    def inject(self, dst: str, msg: Message, src: str = BUS_ID) -> None:
        """Deliver a message from the runtime itself (e.g. Stop); not for agents."""
        self._ports[dst]._deliver(Envelope(src, self.loop.time(), decode(encode(msg)), 0))
