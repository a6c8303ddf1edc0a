"""The market bus: ports bound to agent ids, MessagePack frames on every hop, links with latency and loss.

An agent only ever holds its own ``Port``: the sender of every frame is the id the bus bound to that
port when it was registered, never a field of the frame nor an attribute the agent could rewrite, so
no agent can speak for another. A port is a capability: it has no attribute (public or private) that
leads to the bus, its tables or another port; it sends through a function the bus made for that one
id. Inside one Python process that is a guarantee about attribute paths only: code that walks the
garbage collector, a function's closure cells or the event loop's scheduled callbacks can still reach
anything, which is why the event log is reconciled after the run as well (every payment must be
explained by a round). Every sender but the auctioneer has a budget per window of simulated time
(``RateLimit``: frames and bytes); frames over it are refused before they are decoded or logged, and
one "rate_limited" record per sender and window gives their count. Sealed kinds (bids, reward reports) may
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


# Most resolved routes (sender, destination label) kept at once; see Bus._route.
ROUTE_CACHE = 4096


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


class RateLimit(NamedTuple):
    """What one sender may put on the bus per ``window`` simulated seconds (windows start at multiples
    of ``window``): at most ``frames`` frames and ``bytes`` bytes of frames. The defaults are an order of
    magnitude above the built-in scenarios' busiest agents (5 frames, 300 bytes a second) and leave room
    for several frames of the largest size the wire takes."""

    frames: int = 64
    bytes: int = 256 * 1024
    window: float = 1.0


DEFAULT_LIMIT = RateLimit()


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


def _tree_index(g: nx.Graph) -> tuple[dict[str, str | None], dict[str, int]] | bool:
    """(parent, depth) of every node of an undirected simple tree, rooted at its first node; False for
    any other graph (cycles, several components, directed or multi-edges), whose paths need a search."""
    if g.is_directed() or g.is_multigraph() or len(g) == 0 or not nx.is_tree(g):
        return False
    root = next(iter(g))
    parent: dict[str, str | None] = {root: None}
    depth = {root: 0}
    frontier = [root]
    while frontier:
        nxt = []
        for u in frontier:
            for v in g.adj[u]:
                if v not in depth:
                    parent[v], depth[v] = u, depth[u] + 1
                    nxt.append(v)
        frontier = nxt
    return parent, depth


class Port:
    """An agent's only handle on the bus: sends as the id it was registered with, receives its own inbox.

    It holds its inbox and two functions the bus made for its id (send, group members), nothing else:
    no bus, no loop, no other port. ``id`` is for the agent to read; the bus never trusts it.
    """

    __slots__ = ("id", "_inbox", "_waiter", "_seen", "_send", "_members")

    def __init__(self, agent_id: str, send: Callable[[tuple[str, ...], bytes, str], bool],
                 members: Callable[[str], tuple[str, ...]]) -> None:
        self.id = agent_id
        self._inbox: deque[Envelope] = deque()
        self._waiter: asyncio.Future | None = None
        # sender -> ((send time, seq) in arrival order, {seq}) of frames that came over faulty
        # links, kept as long as a duplicate of them could still arrive
        self._seen: dict[str, tuple[deque, set]] = {}
        self._send = send
        self._members = members

    def send(self, dst: str, msg: Message) -> bool:
        """Send ``msg`` to agent ``dst``; False if the bus refused it (the reason comes back as an Error)."""
        return self._send((dst,), encode(msg), dst)

    def send_bytes(self, dst: str, data: bytes) -> bool:
        """Send a raw frame (it is decoded and validated like any other)."""
        return self._send((dst,), data, dst)

    def broadcast(self, group: str, msg: Message) -> bool:
        """Send ``msg`` to every member of ``group`` (except the sender): one frame, many deliveries."""
        return self._send(self._members(group), encode(msg), f"group:{group}")

    def multicast(self, dsts: tuple[str, ...], msg: Message) -> bool:
        """Send one frame to an explicit list of agents."""
        return self._send(tuple(dsts), encode(msg), ",".join(dsts))

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
                fut = self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await fut
                finally:
                    self._waiter = None
        return self._inbox.popleft()

    def recv_nowait(self) -> Envelope | None:
        return self._inbox.popleft() if self._inbox else None

    async def _wait(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiter = fut
        handle = None
        if timeout is not None:
            if timeout <= 0:
                self._waiter = None
                raise TimeoutError
            handle = loop.call_at(loop.time() + timeout, _expire, fut)
        try:
            await fut
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    async def _wait_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        if when <= loop.time():
            raise TimeoutError
        fut = loop.create_future()
        self._waiter = fut
        handle = loop.call_at(when, _expire, fut)
        try:
            await fut
        finally:
            self._waiter = None
            handle.cancel()

    def _is_duplicate(self, env: Envelope, now: float, max_delay: float) -> bool:
        """Has this (sender, seq) come before? Forgets frames too old to have a copy still in flight."""
        seen = self._seen.get(env.src)
        if seen is None:
            seen = self._seen[env.src] = (deque(), set())
        order, seqs = seen
        if env.seq in seqs:
            return True
        horizon = now - max_delay
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
    """Routes frames between ports. ``record`` (if given) receives one log record per send.
    ``limit``: each sender's budget per window (None: no limit, for benchmarks of the bus alone)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rng: np.random.Generator,
        *,
        auctioneer: str = "auctioneer",
        graph: nx.Graph | None = None,
        record: Callable[[Record], None] | None = None,
        partitions: Iterable[Partition] = (),
        limit: RateLimit | None = DEFAULT_LIMIT,
    ) -> None:
        if limit is not None and (type(limit.frames) is not int or limit.frames < 1
                                  or type(limit.bytes) is not int or limit.bytes < 1
                                  or not (isinstance(limit.window, (int, float)) and 0 < limit.window < float("inf"))):
            raise BusError(f"limit: got {limit!r}, expected frames >= 1 and bytes >= 1 (integers) and a finite "
                           "window > 0 simulated seconds, or None for no limit")
        self.loop = loop
        self.limit = limit
        self.rng = rng
        self.auctioneer = auctioneer
        self._graph = graph
        self._partitions = tuple(partitions)
        # How paths are found, built on first use: (parent, depth) of a tree graph, or False for any other
        # graph, whose paths come from one Dijkstra per source, kept in _paths.
        self._tree: tuple[dict[str, str | None], dict[str, int]] | bool | None = None
        self._paths: dict[str, dict[str, list[str]]] = {}
        self._record = record
        self.max_delay = 0.0  # longest delay any faulty link can give a frame (bounds dedupe memory)
        self.in_flight = 0  # frames scheduled to arrive later
        self._ports: dict[str, Port] = {}
        self._dead: set[str] = set()
        # sender -> [seq, window index, frames and bytes taken in it, frames refused in it]: kept here,
        # where the sender cannot reset it
        self._senders: dict[str, list] = {}
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
        port = Port(agent_id, self._sender(agent_id), self._lister())
        self._ports[agent_id] = port
        self._senders[agent_id] = [0, None, 0, 0, 0]
        for g in groups:
            self._groups[g] = (*self._groups.get(g, ()), agent_id)
        self._links.clear()
        self._routes.clear()
        return port

    def _sender(self, src: str) -> Callable[[tuple[str, ...], bytes, str], bool]:
        """The send capability of ``src``'s port: a closure, so the port has no attribute that is the bus."""
        bus = self

        def send(dsts: tuple[str, ...], data: bytes, label: str) -> bool:
            return bus._send(src, dsts, data, label)

        return send

    def _lister(self) -> Callable[[str], tuple[str, ...]]:
        bus = self

        def members(group: str) -> tuple[str, ...]:
            return bus.members(group)

        return members

    def members(self, group: str) -> tuple[str, ...]:
        try:
            return self._groups[group]
        except KeyError:
            raise BusError(f"group: unknown group {group!r}; known: {sorted(self._groups)}") from None

    def agents(self) -> tuple[str, ...]:
        return tuple(self._ports)

    # -- links -----------------------------------------------------------------------------
    @property
    def graph(self) -> nx.Graph | None:
        return self._graph

    @graph.setter
    def graph(self, graph: nx.Graph | None) -> None:
        self._graph = graph
        self._forget_paths()

    @property
    def partitions(self) -> tuple[Partition, ...]:
        return self._partitions

    @partitions.setter
    def partitions(self, partitions: Iterable[Partition]) -> None:
        self._partitions = tuple(partitions)
        self._forget_paths()

    def _forget_paths(self) -> None:
        """Drop every path, link and route worked out so far: the graph or the partitions changed.
        (A graph changed in place is not seen: assign it again to have the bus work its paths out anew.)"""
        self._tree = None
        self._paths.clear()
        self._links.clear()
        self._routes.clear()

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
        path = self._path(g, src, dst)
        if path is None:
            raise BusError(f"link: no route from {src!r} to {dst!r} in the link graph")
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

    def _path(self, g: nx.Graph, src: str, dst: str) -> list[str] | None:
        """The lowest-latency path from ``src`` to ``dst`` (both in ``g``), None if there is none.

        ``nx.shortest_path`` per pair costs a search of the graph each: at 1,000 agents on a star that is
        2,000 searches of 1,000 nodes before the first round settles. A tree (every built-in topology) has
        one path per pair, found by climbing from both ends to their common ancestor over parents worked out
        once; any other graph gets one Dijkstra per source, kept, whose path to each node is the one
        ``nx.shortest_path`` gives (the same search, stopped at the target)."""
        tree = self._tree
        if tree is None:
            tree = self._tree = _tree_index(g)
        if tree is False:
            paths = self._paths.get(src)
            if paths is None:
                paths = self._paths[src] = nx.single_source_dijkstra_path(g, src, weight="latency")
            return paths.get(dst)
        assert tree is not True
        parent, depth = tree
        up: list[str] = [src]
        down: list[str] = [dst]
        a, b = src, dst
        while depth[a] > depth[b]:
            a = parent[a]  # type: ignore[assignment]
            up.append(a)
        while depth[b] > depth[a]:
            b = parent[b]  # type: ignore[assignment]
            down.append(b)
        while a != b:
            a, b = parent[a], parent[b]  # type: ignore[assignment]
            up.append(a)
            down.append(b)
        down.pop()  # the common ancestor, already at the end of ``up``
        up.extend(reversed(down))
        return up

    # -- sending ---------------------------------------------------------------------------
    def _send(self, src: str, dsts: tuple[str, ...], data: bytes, dst_label: str) -> bool:
        state = self._senders[src]
        if self.limit is not None and src != self.auctioneer and not self._admit(src, state, len(data)):
            return False
        try:
            msg = decode(data)
        except WireError as exc:
            self._refuse(src, "malformed", exc.field, str(exc))
            return False
        if msg.sealed and dsts != self._sealed_dsts:
            self._refuse(src, "sealed", "dst", f"{msg.kind} may only be sent to {self.auctioneer!r}")
            return False
        route = self._routes.get((src, dst_label))
        if route is None:
            route = self._route(src, dsts, dst_label)
            if route is None:
                return False
        state[0] = seq = state[0] + 1
        self.sent += 1
        now = self.loop.time()
        if self._record is not None:
            self._record(MessageSent(now, src, dst_label, msg.kind, data).attach_message(msg))
        env = Envelope(src, now, msg, seq)
        delivered = 0
        for dst, target, link in route:
            if link is None:
                target._inbox.append(env)
                w = target._waiter
                if w is not None and not w.done():
                    w.set_result(None)
                delivered += 1
            else:
                self._transmit(env, dst, link, now)
        self.delivered += delivered
        return True

    def _admit(self, src: str, state: list, size: int) -> bool:
        """Take one frame of ``size`` bytes from ``src``'s budget for the current window; False (and
        counted) if it is spent. Only the first refusal of a window is answered, so a flooder gets
        no traffic back; the count is logged once, when the window is over (``_report``)."""
        limit = self.limit
        assert limit is not None
        now = self.loop.time()
        window = now // limit.window
        if window != state[1]:
            if state[4]:
                self._report(src, state, now)
            state[1], state[2], state[3], state[4] = window, 0, 0, 0
        if state[2] < limit.frames and state[3] + size <= limit.bytes:
            state[2] += 1
            state[3] += size
            return True
        state[4] += 1
        if state[4] == 1:
            self.rejected += 1
            self._ports[src]._deliver(Envelope(BUS_ID, now, Error(
                "rate_limited", "src", f"more than {limit.frames} frames or {limit.bytes} bytes in "
                f"{limit.window:g} simulated seconds: frames are refused until the window ends"), 0))
        return False

    def _report(self, src: str, state: list, now: float) -> None:
        """One record for a sender's refused frames in its last window: their count, not their bytes."""
        limit = self.limit
        assert limit is not None
        start = state[1] * limit.window
        if self._record is not None:
            self._record(Rejected(now, src, "rate_limited", "frames",
                                  f"{state[4]} frames refused in [{start:g}, {start + limit.window:g}) s: over "
                                  f"{limit.frames} frames or {limit.bytes} bytes per {limit.window:g} s"))
        state[4] = 0

    def flush(self) -> None:
        """Log the refused-frame counts of windows no later send has closed, and start every sender's
        budget afresh. The world calls it at the end of the run and before each checkpoint, so a
        checkpoint holds no budget and a resumed run counts exactly as the uninterrupted one did."""
        now = self.loop.time()
        for src, state in self._senders.items():
            if state[4]:
                self._report(src, state, now)
            state[1] = None

    def _route(self, src: str, dsts: tuple[str, ...], label: str) -> tuple[tuple[str, Port, Link | None], ...] | None:
        """Resolve recipients and links once per (sender, destination); None if one is unknown."""
        ports = self._ports
        for dst in dsts:
            if dst not in ports:
                self._refuse(src, "unknown_agent", "dst", f"no agent {dst!r} on the bus")
                return None
        hops: list[tuple[str, Port, Link | None]] = []
        for dst in dsts:
            if dst == src:
                continue
            link: Link | None = self.link(src, dst)
            if link is _PERFECT:
                link = _DEAD_ONLY if dst in self._dead else None
            hops.append((dst, ports[dst], link))
        route = tuple(hops)
        if len(self._routes) >= ROUTE_CACHE:
            # multicasts to drawn invitees make a new label almost every auction: a bounded cache, not one
            # entry per auction for the whole run (a route is a function of the bus's state, so dropping
            # them changes nothing but the time to rebuild them)
            self._routes.clear()
        self._routes[(src, label)] = route
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
        # env._replace(t=...) made directly: _replace goes through _make and a map, five times the cost
        self._arrive(dst, Envelope(env.src, self.loop.time(), env.msg, env.seq))

    def _arrive(self, dst: str, env: Envelope) -> None:
        port = self._ports[dst]
        now = self.loop.time()
        if dst in self._dead:
            self._drop(env, dst, "dead", now)
        elif port._is_duplicate(env, now, self.max_delay):
            self._drop(env, dst, "duplicate", now)
        else:
            self.delivered += 1
            port._deliver(env)

    def _drop(self, env: Envelope, dst: str, reason: str, now: float) -> None:
        self.dropped += 1
        if self._record is not None:
            self._record(MessageDropped(now, env.src, dst, env.msg.kind, reason))

    def _refuse(self, src: str, code: str, field: str, detail: str) -> None:
        """Log a refused frame with its sender and tell the sender why (the bus never raises)."""
        now = self.loop.time()
        self.rejected += 1
        if self._record is not None:
            self._record(Rejected(now, src, code, field, detail))
        reply = Error(code, field[:128], detail[:1024])
        self._ports[src]._deliver(Envelope(BUS_ID, now, reply, 0))

    # -- crashes, quiescence, checkpoints ---------------------------------------------------
    def kill(self, agent_id: str) -> None:
        """The agent is dead: what waits in its inbox and whatever arrives until ``revive`` is dropped."""
        port = self._ports[agent_id]
        self._dead.add(agent_id)
        now = self.loop.time()
        while port._inbox:
            self._drop(port._inbox.popleft(), agent_id, "dead", now)
        self._routes.clear()

    def revive(self, agent_id: str) -> None:
        self._dead.discard(agent_id)
        self._routes.clear()

    def quiescent(self) -> bool:
        """Nothing in flight and every inbox empty: the market's state is its agents' states."""
        return self.in_flight == 0 and not any(p._inbox for p in self._ports.values())

    def get_state(self) -> dict:
        """The bus at a quiescent point: its generator, counters, each port's sequence and dedupe memory.
        Rate budgets are not part of it: ``flush`` has reported and reset them just before."""
        return {
            "rng": self.rng.bit_generator.state,
            "counters": [self.sent, self.delivered, self.rejected, self.dropped],
            "ports": {pid: [self._senders[pid][0], pid in self._dead,
                            {src: list(order) for src, (order, _) in p._seen.items()}]
                      for pid, p in self._ports.items()},
        }

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.sent, self.delivered, self.rejected, self.dropped = state["counters"]
        for pid, (seq, dead, seen) in state["ports"].items():
            port = self._ports[pid]
            self._senders[pid][0] = seq
            if dead:
                self._dead.add(pid)
            else:
                self._dead.discard(pid)
            port._seen = {src: (deque((t, q) for t, q in order), {q for _, q in order})
                          for src, order in seen.items()}
        self._routes.clear()

    def inject(self, dst: str, msg: Message, src: str = BUS_ID) -> None:
        """Deliver a message from the runtime itself (e.g. Stop); not for agents."""
        self._ports[dst]._deliver(Envelope(src, self.loop.time(), decode(encode(msg)), 0))
