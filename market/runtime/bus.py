"""The market bus: ports bound to agent ids, MessagePack frames on every hop, links with latency and loss.

An agent only ever holds its own ``Port``: the sender of every frame is the port's id, never a
field of the frame, so no agent can speak for another. Sealed kinds (bids, reward reports) may
only go to the auctioneer. Links come from a networkx graph whose edges carry ``latency``,
``jitter``, ``loss``, ``duplicate``, ``reorder`` and ``copies`` (see ``market/faults.py``); partitions cut a node
or an edge for a while; every random draw comes from the bus's own generator, and only frames on
links with faults pay for them. A duplicated frame is recognised at the receiving port by its
(sender, seq) and dropped; frames to a dead agent are dropped with reason "dead".
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

import networkx as nx
import numpy as np

from market.core.wire import Error, Message, WireError, decode, encode
from market.runtime.records import MessageDropped, MessageSent, Record, Rejected

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
    """A route's fault parameters: delays add up along the path, probabilities compound."""

    latency: float
    jitter: float
    loss: float
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.0
    cuts: tuple[tuple[float, float], ...] = ()  # [start, end) windows in which the route is partitioned
    copies: int = 1  # each frame is transmitted this many times (forward error correction on lossy links)


class Partition(NamedTuple):
    """A node (``node``) or an edge (``edge``, a pair) cut off from ``start`` to ``end`` simulated seconds."""

    start: float
    end: float
    node: str | None = None
    edge: tuple[str, str] | None = None


_PERFECT = Link(0.0, 0.0, 0.0)
_DEAD_ONLY = Link(0.0, 0.0, 0.0)  # a perfect link to a dead agent: takes the slow path that checks


def star_graph(hub: str, spokes: Iterable[str], **link: float) -> nx.Graph:
    """The default topology: every agent linked to the auctioneer, with the same link parameters."""
    g = nx.Graph()
    g.add_node(hub)
    for s in spokes:
        g.add_edge(hub, s, **link)
    return g


class Port:
    """An agent's only handle on the bus: sends as ``self.id``, receives its own inbox."""

    __slots__ = ("id", "_bus", "_inbox", "_waiter", "_seq", "_loop", "_seen", "dead")

    def __init__(self, bus: Bus, agent_id: str) -> None:
        self.id = agent_id
        self._bus = bus
        self._inbox: deque[Envelope] = deque()
        self._waiter: asyncio.Future | None = None
        self._seq = 0
        self._loop = bus.loop
        # sender -> ((send time, seq) in arrival order, {seq}) of frames that came over faulty
        # links, kept as long as a duplicate of them could still arrive
        self._seen: dict[str, tuple[deque, set]] = {}
        self.dead = False

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

    async def recv(self, timeout: float | None = None, *, until: float | None = None) -> Envelope:
        """Next envelope; raises ``TimeoutError`` after ``timeout`` simulated seconds without one
        (or at the simulated time ``until``: an absolute deadline needs no float subtraction)."""
        if not self._inbox:
            if until is not None:
                await self._wait_until(until)
            elif timeout is not None:
                await self._wait(timeout)
            else:
                # the common case, inlined: it runs once per message an agent waits for
                fut = self._waiter = self._loop.create_future()
                try:
                    await fut
                finally:
                    self._waiter = None
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

    async def _wait_until(self, when: float) -> None:
        if when <= self._loop.time():
            raise TimeoutError
        fut = self._loop.create_future()
        self._waiter = fut
        handle = self._loop.call_at(when, _expire, fut)
        try:
            await fut
        finally:
            self._waiter = None
            handle.cancel()

    def _is_duplicate(self, env: Envelope, now: float) -> bool:
        """Has this (sender, seq) come before? Forgets frames too old to have a copy still in flight."""
        seen = self._seen.get(env.src)
        if seen is None:
            seen = self._seen[env.src] = (deque(), set())
        order, seqs = seen
        if env.seq in seqs:
            return True
        horizon = now - self._bus.max_delay
        while order and order[0][0] < horizon:
            seqs.discard(order.popleft()[1])
        order.append((env.t, env.seq))
        seqs.add(env.seq)
        return False

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
        record: Callable[[Record], None] | None = None,
        partitions: Iterable[Partition] = (),
    ) -> None:
        self.loop = loop
        self.rng = rng
        self.auctioneer = auctioneer
        self.graph = graph
        self.partitions = tuple(partitions)
        self._record = record
        self.max_delay = 0.0  # longest delay any faulty link can give a frame (bounds dedupe memory)
        self.in_flight = 0  # frames scheduled to arrive later
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
        latency = jitter = reorder_delay = 0.0
        keep = single = in_order = 1.0
        copies = 1
        for a, b in zip(path, path[1:]):
            e = g.edges[a, b]
            copies = max(copies, int(e.get("copies", 1)))
            latency += float(e.get("latency", 0.0))
            jitter += float(e.get("jitter", 0.0))
            keep *= 1.0 - float(e.get("loss", 0.0))
            single *= 1.0 - float(e.get("duplicate", 0.0))
            in_order *= 1.0 - float(e.get("reorder", 0.0))
            reorder_delay = max(reorder_delay, float(e.get("reorder_delay", 0.0)))
        if min(latency, jitter, reorder_delay) < 0 or not all(0.0 <= p <= 1.0 for p in (keep, single, in_order)):
            raise BusError(f"link: bad parameters on the route {src!r} -> {dst!r}: {latency=}, {jitter=}, "
                           f"loss={1 - keep}, duplicate={1 - single}, reorder={1 - in_order}")
        on_path = set(path)
        edges = {frozenset(e) for e in zip(path, path[1:])}
        cuts = tuple(sorted((p.start, p.end) for p in self.partitions
                            if (p.node is not None and p.node in on_path)
                            or (p.edge is not None and frozenset(p.edge) in edges)))
        if latency == jitter == 0.0 and keep == single == in_order == 1.0 and not cuts:
            return _PERFECT
        link = Link(latency, jitter, 1.0 - keep, 1.0 - single, 1.0 - in_order, reorder_delay, cuts, copies)
        self.max_delay = max(self.max_delay, latency + jitter + reorder_delay)
        return link

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
            self._record(MessageSent(now, src, dst_label, msg.kind, data))
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

    def _route(self, port: Port, dsts: tuple[str, ...], label: str) -> tuple[tuple[Port, Link | None], ...] | None:
        """Resolve recipients and links once per (sender, destination); None if one is unknown."""
        ports = self._ports
        for dst in dsts:
            if dst not in ports:
                self._refuse(port, "unknown_agent", "dst", f"no agent {dst!r} on the bus")
                return None
        hops: list[tuple[Port, Link | None]] = []
        for dst in dsts:
            if dst == port.id:
                continue
            link: Link | None = self.link(port.id, dst)
            if link is _PERFECT:
                link = _DEAD_ONLY if ports[dst].dead else None
            hops.append((ports[dst], link))
        route = tuple(hops)
        self._routes[(port.id, label)] = route
        return route

    def _transmit(self, env: Envelope, dst: str, link: Link, now: float) -> None:
        """One frame over a faulty link: partition, then for each transmitted copy loss, delay,
        reordering and duplication, in this order. Copies that get through twice are dropped at the
        receiving port by their sequence number, like network duplicates."""
        for start, end in link.cuts:
            if start <= now < end:
                self._drop(env, dst, "partition", now)
                return
        for _ in range(link.copies):
            self._transmit_copy(env, dst, link, now)

    def _transmit_copy(self, env: Envelope, dst: str, link: Link, now: float) -> None:
        if link.loss and self.rng.random() < link.loss:
            self._drop(env, dst, "loss", now)
            return
        copies = 2 if link.duplicate and self.rng.random() < link.duplicate else 1
        for _ in range(copies):
            delay = link.latency
            if link.jitter:
                delay += link.jitter * self.rng.random()
            if link.reorder and self.rng.random() < link.reorder:
                delay += link.reorder_delay * self.rng.random()  # held back: later frames overtake it
            if delay <= 0.0:
                self._arrive(dst, env)
            else:
                self.in_flight += 1
                self.loop.call_at(now + delay, self._land, dst, env)

    def _land(self, dst: str, env: Envelope) -> None:
        self.in_flight -= 1
        self._arrive(dst, env._replace(t=self.loop.time()))

    def _arrive(self, dst: str, env: Envelope) -> None:
        port = self._ports[dst]
        now = self.loop.time()
        if port.dead:
            self._drop(env, dst, "dead", now)
        elif port._is_duplicate(env, now):
            self._drop(env, dst, "duplicate", now)
        else:
            self.delivered += 1
            port._deliver(env)

    def _drop(self, env: Envelope, dst: str, reason: str, now: float) -> None:
        self.dropped += 1
        if self._record is not None:
            self._record(MessageDropped(now, env.src, dst, env.msg.kind, reason))

    def _refuse(self, port: Port, code: str, field: str, detail: str) -> None:
        """Log a refused frame with its sender and tell the sender why (the bus never raises)."""
        now = self.loop.time()
        self.rejected += 1
        if self._record is not None:
            self._record(Rejected(now, port.id, code, field, detail))
        reply = Error(code, field[:128], detail[:1024])
        port._deliver(Envelope(BUS_ID, now, reply, 0))

    # -- crashes, quiescence, checkpoints ---------------------------------------------------
    def kill(self, agent_id: str) -> None:
        """The agent is dead: what waits in its inbox and whatever arrives until ``revive`` is dropped."""
        port = self._ports[agent_id]
        port.dead = True
        now = self.loop.time()
        while port._inbox:
            self._drop(port._inbox.popleft(), agent_id, "dead", now)
        self._routes.clear()

    def revive(self, agent_id: str) -> None:
        self._ports[agent_id].dead = False
        self._routes.clear()

    def quiescent(self) -> bool:
        """Nothing in flight and every inbox empty: the market's state is its agents' states."""
        return self.in_flight == 0 and not any(p._inbox for p in self._ports.values())

    def get_state(self) -> dict:
        """The bus at a quiescent point: its generator, counters, each port's sequence and dedupe memory."""
        return {
            "rng": self.rng.bit_generator.state,
            "counters": [self.sent, self.delivered, self.rejected, self.dropped],
            "ports": {pid: [p._seq, p.dead, {src: list(order) for src, (order, _) in p._seen.items()}]
                      for pid, p in self._ports.items()},
        }

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.sent, self.delivered, self.rejected, self.dropped = state["counters"]
        for pid, (seq, dead, seen) in state["ports"].items():
            port = self._ports[pid]
            port._seq, port.dead = seq, dead
            port._seen = {src: (deque((t, q) for t, q in order), {q for _, q in order})
                          for src, order in seen.items()}
        self._routes.clear()

    def inject(self, dst: str, msg: Message, src: str = BUS_ID) -> None:
        """Deliver a message from the runtime itself (e.g. Stop); not for agents."""
        self._ports[dst]._deliver(Envelope(src, self.loop.time(), decode(encode(msg)), 0))
