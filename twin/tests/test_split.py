"""Placement of a lab across agents and its split into sub-labs with VXLAN tunnel ends (fast, no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.base import Endpoint, Link, Node, Topology, TwinError
from twin.capacity import TWIN_BASE_MB
from twin.split import node_cost_mb, placement, split_topology
from twin.topology import load_lab

LABS = Path(__file__).resolve().parents[2] / "labs"


def _cut(topology, where) -> int:
    return sum(1 for link in topology.links if where[link.a.node] != where[link.b.node])


def test_a_lab_that_fits_one_agent_stays_on_it():
    fabric = load_lab(LABS / "fabric")
    where = placement(fabric, {"a": 10_000, "b": 10_000})
    assert set(where.values()) == {"a"} and _cut(fabric, where) == 0


def test_a_lab_too_large_for_one_agent_is_split_within_budgets_keeping_links_local():
    fabric = load_lab(LABS / "fabric")  # 2 spines x 4 leaves, every leaf on both spines: 8 links
    per_node = node_cost_mb(fabric, "leaf1")
    budget = TWIN_BASE_MB + 3 * per_node
    where = placement(fabric, {"a": budget, "b": budget})
    shares = {a: [n for n in where if where[n] == a] for a in ("a", "b")}
    assert sorted(len(s) for s in shares.values()) == [3, 3]
    # each spine with two of its leaves: 4 of the 8 links cross, the least a 3/3 split allows
    assert _cut(fabric, where) == 4
    assert all(sum(1 for n in s if n.startswith("spine")) == 1 for s in shares.values())


def test_a_lab_larger_than_all_agents_is_refused_with_the_figures():
    fabric = load_lab(LABS / "fabric")
    with pytest.raises(TwinError, match=r"the lab does not fit: ~\d+ MB of nodes"):
        placement(fabric, {"a": 60, "b": 60})


def test_a_lan_segment_stays_whole_on_one_host():
    # r1..r4 on one LAN (a bridge), r5 and r6 hanging off r4: the LAN and its routers go together.
    nodes = {f"r{i}": Node(name=f"r{i}", role="frr", daemons=["zebra", "staticd", "bgpd"]) for i in range(1, 7)}
    nodes["lan"] = Node(name="lan", role="bridge")
    links = [Link(Endpoint(f"r{i}", "eth1"), Endpoint("lan", f"p{i}")) for i in range(1, 5)]
    links += [Link(Endpoint("r4", "eth2"), Endpoint("r5", "eth1")), Link(Endpoint("r5", "eth2"), Endpoint("r6", "eth1"))]
    topo = Topology(name="lan", nodes=nodes, links=links, source="lan.clab.yml")
    budget = TWIN_BASE_MB + 4 * node_cost_mb(topo, "r1")
    where = placement(topo, {"a": budget, "b": budget})
    assert len({where[n] for n in ("lan", "r1", "r2", "r3", "r4")}) == 1
    assert where["r5"] == where["r6"] != where["r4"]  # one cut link, r4-r5


def test_split_gives_each_cross_link_a_tunnel_end_on_both_hosts_with_one_vni():
    fabric = load_lab(LABS / "fabric")
    budget = TWIN_BASE_MB + 3 * node_cost_mb(fabric, "leaf1")
    where = placement(fabric, {"a": budget, "b": budget})
    parts = split_topology(fabric, where, {"a": "10.9.0.1", "b": "10.9.0.2"}, vni_base=5000)
    by_agent = {p.agent: p for p in parts}
    assert sum(len(p.topology.links) for p in parts) + 4 == len(fabric.links)
    assert len(by_agent["a"].tunnels) == len(by_agent["b"].tunnels) == 4
    assert {t.remote for t in by_agent["a"].tunnels} == {"10.9.0.2"}
    assert sorted(t.vni for t in by_agent["a"].tunnels) == sorted(t.vni for t in by_agent["b"].tunnels)
    for p in parts:
        assert p.topology.name == fabric.name  # same name: same MACs and link-locals as on one host
        for t in p.tunnels:
            assert t.node in p.topology.nodes and t.mtu == 1450


def test_split_refuses_an_agent_without_an_underlay_address():
    fabric = load_lab(LABS / "fabric")
    budget = TWIN_BASE_MB + 3 * node_cost_mb(fabric, "leaf1")
    where = placement(fabric, {"a": budget, "b": budget})
    with pytest.raises(TwinError, match="no underlay address"):
        split_topology(fabric, where, {"a": "10.9.0.1", "b": ""})
