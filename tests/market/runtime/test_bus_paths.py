"""The bus's path index (tree climb, or one Dijkstra per source) gives exactly the links of ``nx.shortest_path``."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.runtime.bus import Bus, BusError, Link, Partition, star_graph
from market.runtime.kernel import VirtualTimeLoop


def _bus(graph: nx.Graph, partitions: tuple[Partition, ...] = ()) -> Bus:
    return Bus(VirtualTimeLoop(), np.random.default_rng(0), graph=graph, partitions=partitions)


def _reference(bus: Bus, src: str, dst: str) -> Link:
    """The link as the bus computed it with one ``nx.shortest_path`` per pair."""
    path = nx.shortest_path(bus.graph, src, dst, weight="latency")
    assert bus._path(bus.graph, src, dst) == path
    return bus._path_link(src, dst)


@st.composite
def graphs(draw: st.DrawFn) -> nx.Graph:
    """A random tree (Prüfer-free: each node hangs off an earlier one), sometimes with extra edges (cycles)."""
    n = draw(st.integers(2, 12))
    g = nx.Graph()
    g.add_node("n0")
    params = st.fixed_dictionaries({"latency": st.floats(0.0, 1.0), "jitter": st.floats(0.0, 0.5),
                                    "loss": st.sampled_from([0.0, 0.1, 0.25])})
    for i in range(1, n):
        g.add_edge(f"n{draw(st.integers(0, i - 1))}", f"n{i}", **draw(params))
    for _ in range(draw(st.integers(0, 3))):
        a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        if a != b:
            g.add_edge(f"n{a}", f"n{b}", **draw(params))
    return g


@settings(max_examples=60, deadline=None)
@given(graphs(), st.data())
def test_links_equal_those_of_a_shortest_path_per_pair(g: nx.Graph, data: st.DataObject) -> None:
    bus = _bus(g)
    nodes = sorted(g)
    for _ in range(8):
        src, dst = data.draw(st.sampled_from(nodes)), data.draw(st.sampled_from(nodes))
        if src == dst:
            continue
        assert bus.link(src, dst) == _reference(_bus(g), src, dst)


def test_a_star_is_indexed_as_a_tree_and_a_cycle_is_searched() -> None:
    star = _bus(star_graph("auctioneer", [f"p{i}" for i in range(5)], latency=0.01))
    star.link("p0", "p3")
    assert star._tree is not False and not star._paths
    ring = nx.cycle_graph(["a", "b", "c", "d"])
    nx.set_edge_attributes(ring, 0.1, "latency")
    bus = _bus(ring)
    assert bus.link("a", "c").latency == pytest.approx(0.2)
    assert bus._tree is False and set(bus._paths) == {"a"}


def test_no_route_between_components_is_refused() -> None:
    g = nx.Graph()
    g.add_edge("a", "b", latency=0.1)
    g.add_edge("c", "d", latency=0.1)
    with pytest.raises(BusError, match="no route from 'a' to 'c'"):
        _bus(g).link("a", "c")


def test_new_graph_or_partitions_replace_every_worked_out_path() -> None:
    bus = _bus(star_graph("hub", ["a", "b"], latency=0.1))
    assert bus.link("a", "b").latency == pytest.approx(0.2)
    bus.graph = star_graph("hub", ["a", "b"], latency=0.3)
    assert bus.link("a", "b").latency == pytest.approx(0.6)
    bus.partitions = (Partition(1.0, 2.0, node="hub"),)
    assert bus.link("a", "b").cuts == ((1.0, 2.0),)
