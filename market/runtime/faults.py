"""The fault model of a scenario's ``[faults]`` table: lossy, slow, duplicating, reordering links,
timed partitions, and agents that crash at a simulated time and may restart.

Network faults become link-graph edge attributes and bus partitions (the bus draws them from its
seeded stream); crashes are scheduled by the world. Every bad entry is refused with its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from market.runtime.bus import Partition
from market.runtime.config import ConfigError
from market.runtime.schema import DELAY, MAX_TIME, PROBABILITY, Int, Real, Rule, shown

LINK_KEYS = ("loss", "latency", "jitter", "duplicate", "reorder", "reorder_delay", "copies")
PROBABILITIES = ("loss", "duplicate", "reorder")
MAX_COPIES = 8  # ``copies``: how many times each frame is transmitted (the market's answer to loss)
# What each link key accepts, in ``[faults]``, in its ``links`` entries and (for a scenario's own link keys,
# ``market.latency`` and the like) in the scenario's schema: one rule per key wherever it is written.
LINK_RULES: dict[str, Rule] = {
    **{k: PROBABILITY for k in PROBABILITIES},
    "latency": DELAY, "jitter": DELAY, "reorder_delay": DELAY,
    "copies": Int(1, MAX_COPIES),
}
TIME = Real(0.0, MAX_TIME)  # when a partition starts or ends, an agent crashes or restarts
RESTORE = ("last", "reset")

# The keys a builder puts under DEFAULTS["faults"]: all off.
DEFAULTS: dict[str, Any] = {
    **{k: 0.0 for k in LINK_KEYS}, "copies": 1, "links": [], "partitions": [], "crashes": [],
}


@dataclass(frozen=True, slots=True)
class Crash:
    """``agent`` dies at ``at``; if ``restart`` is set it comes back then, with its state as it was
    when it died (``restore = "last"``: it kept its state in durable storage) or as it was at the
    start of the run (``"reset"``: a fresh process). Either way its run() starts afresh."""

    agent: str
    at: float
    restart: float | None = None
    restore: str = "last"


@dataclass(frozen=True, slots=True)
class FaultModel:
    """Link faults for every edge (``link``), overrides per edge, partitions and crashes."""

    link: dict[str, float]
    edges: tuple[tuple[tuple[str, str], dict[str, float]], ...]
    partitions: tuple[Partition, ...]
    crashes: tuple[Crash, ...]

    @property
    def network(self) -> bool:
        """Does any link misbehave (so the bus needs a link graph)?"""
        return any(v for k, v in self.link.items() if k != "copies") or bool(self.edges) or bool(self.partitions)


def _number(key: str, v: Any) -> float:
    """A simulated time in [0, MAX_TIME]."""
    why = TIME.refusal(v)
    if why is not None:
        raise ConfigError(f"{key}: got {shown(v)}, expected {why}")
    return float(v)


def _link_params(key: str, table: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in table.items():
        if k not in LINK_KEYS:
            raise ConfigError(f"{key}.{k}: unknown key; known: {list(LINK_KEYS)}")
        why = LINK_RULES[k].refusal(v)
        if why is not None:
            raise ConfigError(f"{key}.{k}: got {shown(v)}, expected {why}")
        out[k] = v if k == "copies" else float(v)
    return out


def _pair(key: str, v: Any) -> tuple[str, str]:
    if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, str) and x for x in v) or v[0] == v[1]:
        raise ConfigError(f"{key}: got {v!r}, expected two different agent ids, like [\"auctioneer\", \"user\"]")
    return v[0], v[1]


def _table(key: str, v: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ConfigError(f"{key}: got {v!r}, expected a table")
    for k in v:
        if k not in allowed:
            raise ConfigError(f"{key}.{k}: unknown key; known: {list(allowed)}")
    return v


def parse_faults(table: dict[str, Any]) -> FaultModel:
    """Check a ``[faults]`` table (already merged over ``DEFAULTS``) and build the model."""
    link = _link_params("faults", {k: table[k] for k in LINK_KEYS})
    edges = []
    for i, e in enumerate(table["links"]):
        key = f"faults.links[{i}]"
        e = _table(key, e, ("edge", *LINK_KEYS))
        if "edge" not in e:
            raise ConfigError(f"{key}.edge: missing; expected two agent ids")
        edges.append((_pair(f"{key}.edge", e["edge"]), _link_params(key, {k: v for k, v in e.items() if k != "edge"})))
    partitions = []
    for i, p in enumerate(table["partitions"]):
        key = f"faults.partitions[{i}]"
        p = _table(key, p, ("node", "edge", "start", "end"))
        if ("node" in p) == ("edge" in p):
            raise ConfigError(f"{key}: got {p!r}, expected exactly one of node = \"id\" or edge = [\"a\", \"b\"]")
        start = _number(f"{key}.start", p.get("start"))
        end = _number(f"{key}.end", p.get("end"))
        if end <= start:
            raise ConfigError(f"{key}.end: got {end!r}, expected a time after start = {start!r}")
        if "node" in p:
            if not isinstance(p["node"], str) or not p["node"]:
                raise ConfigError(f"{key}.node: got {p['node']!r}, expected an agent id")
            partitions.append(Partition(start, end, node=p["node"]))
        else:
            partitions.append(Partition(start, end, edge=_pair(f"{key}.edge", p["edge"])))
    crashes = []
    for i, c in enumerate(table["crashes"]):
        key = f"faults.crashes[{i}]"
        c = _table(key, c, ("agent", "at", "restart", "restore"))
        agent = c.get("agent")
        if not isinstance(agent, str) or not agent:
            raise ConfigError(f"{key}.agent: got {agent!r}, expected an agent id")
        at = _number(f"{key}.at", c.get("at"))
        restart = c.get("restart")
        if restart is not None and _number(f"{key}.restart", restart) <= at:
            raise ConfigError(f"{key}.restart: got {restart!r}, expected a time after at = {at!r}")
        restore = c.get("restore", "last")
        if restore not in RESTORE:
            raise ConfigError(f"{key}.restore: got {restore!r}, expected one of {list(RESTORE)}")
        crashes.append(Crash(agent, at, None if restart is None else float(restart), restore))
    return FaultModel(link, tuple(edges), tuple(partitions), tuple(crashes))


def link_graph(model: FaultModel, hub: str, spokes: list[str], base: dict[str, float]) -> nx.Graph:
    """A star around ``hub``: each edge has ``base`` (the market's own link parameters) combined with
    the fault model's (delays add, probabilities compound); ``links`` entries replace the latter per edge."""
    g = nx.Graph()
    g.add_node(hub)
    for s in spokes:
        g.add_edge(hub, s)
    overrides = {}
    for (a, b), params in model.edges:
        if not g.has_edge(a, b):
            raise ConfigError(f"faults.links: no edge {[a, b]!r} in the star around {hub!r}; edges join {hub!r} "
                              f"to one of {spokes}")
        overrides[frozenset((a, b))] = params
    for a, b in g.edges:
        faults = {**model.link, **overrides.get(frozenset((a, b)), {})}
        attrs: dict[str, float] = {}
        for k in LINK_KEYS:
            if k == "copies":
                attrs[k] = max(int(base.get(k, 1)), int(faults.get(k, 1)))
                continue
            x, y = float(base.get(k, 0.0)), faults.get(k, 0.0)
            if k in PROBABILITIES:
                attrs[k] = 1.0 - (1.0 - x) * (1.0 - y)
            else:
                attrs[k] = max(x, y) if k == "reorder_delay" else x + y
        g.add_edge(a, b, **attrs)
    return g


def check_agents(model: FaultModel, agents: list[str], hub: str) -> None:
    """Partitions and crashes must name agents of the run; the hub cannot crash (its crash is the
    whole run's: checkpoints and ``--resume`` cover it)."""
    known = set(agents)
    for i, p in enumerate(model.partitions):
        for a in ((p.node,) if p.node is not None else p.edge or ()):
            if a not in known:
                raise ConfigError(f"faults.partitions[{i}]: got agent {a!r}, expected one of {sorted(known)}")
    for i, c in enumerate(model.crashes):
        if c.agent not in known:
            raise ConfigError(f"faults.crashes[{i}].agent: got {c.agent!r}, expected one of {sorted(known)}")
        if c.agent == hub:
            raise ConfigError(f"faults.crashes[{i}].agent: got {hub!r}, expected a participant: the auctioneer's "
                              "crash is the whole run's (checkpoints and `llm-market run --resume` cover it)")


def max_route_delay(g: nx.Graph | None) -> float:
    """The longest a frame can take between two spokes of a star (two edges): how long to drain."""
    if g is None:
        return 0.0
    edge = max((d.get("latency", 0.0) + d.get("jitter", 0.0) + d.get("reorder_delay", 0.0)
                for _, _, d in g.edges(data=True)), default=0.0)
    return 2.0 * edge
