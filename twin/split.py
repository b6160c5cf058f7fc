"""Twins across hosts: a lab split over several twin agents, links between hosts as VXLAN tunnels.

Django-free. The way containerlab and netlab's multi-server setups span hosts: each host runs
its share of the nodes; a link whose ends land on two hosts becomes, at each end, a VXLAN
device named as the lab's interface, with one VNI per link, carried over the hosts' underlay
(the agents' `--underlay` addresses). Routing daemons see an ordinary interface.

* `placement()` decides which agent runs which node: it grows one part at a time from the
  best-connected node, always taking the node with the most links into the part, so as many
  links as possible stay local, and never past an agent's free memory (twin/capacity.py).
  LAN segments (`bridge` nodes) stay whole, with every node attached to them.
* `SplitBackend.spawn()` asks each agent for its budget, places, spawns every part (with its
  tunnels), and returns a `SplitTwin` that the pipeline uses like any other twin. A part that
  fails to spawn tears down the others.
* `SplitTwin.converge()` settles when every host reports its routers still over the same
  window (one host settling before the others is not enough: a late change on one host
  reaches the others through the tunnels). `snapshot()` merges the hosts' snapshots and pings
  the same pairs as a one-host twin would (same sampling, same seed), each from its own host.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .base import (
    ApplyResult,
    ConvergeResult,
    Progress,
    RejectedLine,
    ReloadResult,
    Topology,
    Tunnel,
    TwinError,
    no_progress,
)
from .capacity import TWIN_BASE_MB
from .capacity import node_cost_mb as _node_cost_mb
from .fib import fib_links
from .netns import loopbacks_of, mac_for, reachability_pairs
from .remote import AgentError, RemoteBackend, RemoteTwin

VXLAN_MTU = 1450  # 1500 less 50 bytes of VXLAN over an IPv4 underlay with MTU 1500


def node_cost_mb(topology: Topology, name: str) -> int:
    """What node `name` is charged against an agent's budget (twin/capacity.py)."""
    return _node_cost_mb(topology.nodes[name])


def _atoms(topology: Topology) -> list[list[str]]:
    """Groups of nodes that must share a host: a LAN segment with every node on it; else one node."""
    parent = {n: n for n in topology.nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for link in topology.links:
        a, b = link.a.node, link.b.node
        if "bridge" in (topology.nodes[a].role, topology.nodes[b].role):
            parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for n in sorted(topology.nodes):
        groups.setdefault(find(n), []).append(n)
    return sorted(groups.values())


def placement(topology: Topology, budgets: dict[str, int]) -> dict[str, str]:
    """Node -> agent, keeping links local and each agent's share within its budget (MB).

    Agents are filled in the order given (put the roomiest first). Raises TwinError with the
    figures when the lab does not fit in all of them together.
    """
    atoms = _atoms(topology)
    atom_of = {n: i for i, group in enumerate(atoms) for n in group}
    cost = [sum(node_cost_mb(topology, n) for n in group) for group in atoms]
    weight: dict[tuple[int, int], int] = {}
    for link in topology.links:
        i, j = atom_of[link.a.node], atom_of[link.b.node]
        if i != j:
            weight[(i, j)] = weight.get((i, j), 0) + 1
            weight[(j, i)] = weight.get((j, i), 0) + 1
    degree = [sum(w for (i, _), w in weight.items() if i == k) for k in range(len(atoms))]
    unplaced = set(range(len(atoms)))
    parts: list[tuple[str, int, set[int]]] = []
    for agent, budget in budgets.items():
        room = budget - TWIN_BASE_MB
        part: set[int] = set()
        while unplaced:
            fits = [k for k in unplaced if cost[k] <= room]
            if not fits:
                break
            # Gain = links into the part less links to nodes not placed yet (those would be cut
            # if the part closed now); then the best-connected; then by name, for a stable plan.
            best = max(fits, key=lambda k: (
                sum(weight.get((k, p), 0) for p in part)
                - sum(weight.get((k, u), 0) for u in unplaced if u != k),
                degree[k], [-ord(c) for c in atoms[k][0]]))
            part.add(best)
            unplaced.discard(best)
            room -= cost[best]
        parts.append((agent, budget, part))
    if unplaced:
        need = sum(cost[k] for k in unplaced)
        raise TwinError(f"the lab does not fit: ~{need} MB of nodes ({', '.join(sorted(n for k in unplaced for n in atoms[k]))[:200]}) "
                        f"left after filling every agent (free MB: {budgets}); add an agent or raise a budget")
    _refine(parts, cost, weight)
    return {n: agent for agent, _, part in parts for k in part for n in atoms[k]}


def _refine(parts: list[tuple[str, int, set[int]]], cost: list[int], weight: dict[tuple[int, int], int],
            passes: int = 4) -> None:
    """Swap pairs of nodes between parts while that cuts fewer links and budgets still hold (Kernighan-Lin)."""
    if len(parts) < 2 or len(cost) > 600:
        return
    part_of = {k: i for i, (_, _, part) in enumerate(parts) for k in part}
    used = [sum(cost[k] for k in part) for _, _, part in parts]

    adjacent: dict[int, list[tuple[int, int]]] = {}
    for (a, b), w in weight.items():
        adjacent.setdefault(a, []).append((b, w))

    def links_to(k: int, i: int) -> int:
        return sum(w for b, w in adjacent.get(k, []) if part_of[b] == i)

    for _ in range(passes):
        improved = False
        for u in sorted(part_of):
            for v in sorted(part_of):
                i, j = part_of[u], part_of[v]
                if i >= j:
                    continue
                room_i = parts[i][1] - TWIN_BASE_MB - used[i] + cost[u] - cost[v]
                room_j = parts[j][1] - TWIN_BASE_MB - used[j] + cost[v] - cost[u]
                if room_i < 0 or room_j < 0:
                    continue
                # Cut change of moving u to j and v to i (the u-v link, if any, stays cut).
                gain = (links_to(u, j) - links_to(u, i)) + (links_to(v, i) - links_to(v, j)) \
                    - 2 * weight.get((u, v), 0)
                if gain > 0:
                    parts[i][2].discard(u)
                    parts[j][2].discard(v)
                    parts[i][2].add(v)
                    parts[j][2].add(u)
                    part_of[u], part_of[v] = j, i
                    used[i] += cost[v] - cost[u]
                    used[j] += cost[u] - cost[v]
                    improved = True
        if not improved:
            return


@dataclass
class Part:
    agent: str
    topology: Topology
    tunnels: list[Tunnel]


def split_topology(topology: Topology, where: dict[str, str], underlay: dict[str, str],
                   vni_base: int | None = None) -> list[Part]:
    """One sub-lab per agent: its nodes, its local links, and a tunnel end for each link that leaves it."""
    agents = sorted(set(where.values()))
    if vni_base is None:
        # Random per twin, so two split twins between the same hosts never share a VNI.
        vni_base = 4096 + secrets.randbelow(16_000_000 - len(topology.links) - 4096)
    parts = {a: Part(a, Topology(name=topology.name, nodes={}, links=[], source=topology.source,
                                 warnings=list(topology.warnings)), []) for a in agents}
    for name, node in topology.nodes.items():
        parts[where[name]].topology.nodes[name] = node
    for k, link in enumerate(topology.links):
        ha, hb = where[link.a.node], where[link.b.node]
        if ha == hb:
            parts[ha].topology.links.append(link)
            continue
        for missing in (ha, hb):
            if not underlay.get(missing):
                raise TwinError(f"agent {missing} has no underlay address (start it with --underlay IP): "
                                "it cannot hold a link to another host")
        for ep, here, there in ((link.a, ha, hb), (link.b, hb, ha)):
            parts[here].tunnels.append(Tunnel(
                node=ep.node, iface=ep.iface, vni=vni_base + k, remote=underlay[there],
                mac=ep.mac or mac_for(topology.name, ep.node, ep.iface), mtu=link.mtu or VXLAN_MTU))
    return [parts[a] for a in agents]


def _parallel(fn: Any, items: list[Any]) -> list[Any]:
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(fn, items))


class SplitBackend:
    """The `http` backend over several agents: `SplitBackend([RemoteBackend(...), ...])`."""

    name = "http"
    tier = "real"

    def __init__(self, agents: list[RemoteBackend]) -> None:
        if not agents:
            raise AgentError("no twin agents configured (AEGIS_TWIN_AGENTS)")
        self.agents = {a.client.url: a for a in agents}

    def plan(self, topology: Topology) -> tuple[dict[str, str], dict[str, str]]:
        """(node -> agent URL, agent URL -> underlay address), from each agent's status."""
        statuses = dict(zip(self.agents, _parallel(lambda a: a.status(), list(self.agents.values())), strict=True))
        budgets = dict(sorted(((url, int(s["capacity"]["free_mb"])) for url, s in statuses.items()),
                              key=lambda item: -item[1]))
        return placement(topology, budgets), {url: s.get("underlay") or "" for url, s in statuses.items()}

    def spawn(self, topology: Topology, run_id: str | None = None, progress: Progress = no_progress) -> SplitTwin:
        where, underlay = self.plan(topology)
        parts = split_topology(topology, where, underlay)
        progress("spawn", "info", "placement: " + "; ".join(
            f"{p.agent} {len(p.topology.nodes)} nodes, {len(p.tunnels)} tunnel ends" for p in parts),
            {"placement": where})
        spawned: list[tuple[Part, RemoteTwin]] = []
        errors: list[str] = []

        def one(part: Part) -> None:
            try:
                twin = self.agents[part.agent].spawn(part.topology, run_id, progress, tunnels=part.tunnels)
                spawned.append((part, twin))
            except TwinError as exc:
                errors.append(str(exc))

        _parallel(one, parts)
        if errors:
            for _, twin in spawned:
                try:
                    twin.teardown()
                except TwinError as exc:
                    errors.append(f"and its teardown: {exc}")
            raise AgentError("spawn across agents failed: " + " | ".join(errors))
        order = {p.agent: i for i, p in enumerate(parts)}
        return SplitTwin(topology, sorted(spawned, key=lambda pt: order[pt[0].agent]), where)


class SplitTwin:
    """One lab running on several agents; the `Twin` protocol over all of them."""

    def __init__(self, topology: Topology, parts: list[tuple[Part, RemoteTwin]], where: dict[str, str]) -> None:
        self.topology = topology
        self.parts = parts
        self.where = where
        self._twin_of = {n: twin for part, twin in parts for n in part.topology.nodes}
        self.load_errors: list[RejectedLine] = [r for _, twin in parts for r in twin.load_errors]
        first = parts[0][1].facts
        self.facts: dict[str, Any] = {
            **first, "backend": "http", "nodes": len(topology.routers()), "links": len(topology.links),
            "agents": {part.agent: sorted(part.topology.nodes) for part, _ in parts},
            "tunnels": sum(len(part.tunnels) for part, _ in parts) // 2,
            "spawn_s": max(float(twin.facts.get("spawn_s") or 0) for _, twin in parts),
            "warnings": sorted({w for _, twin in parts for w in twin.facts.get("warnings", [])}),
        }
        if len(parts) > 1:
            diffs = list(first.get("differences_from_production") or [])
            diffs.append("the twin ran on several hosts: links between them are VXLAN tunnels (MTU 1450) over "
                         "the hosts' underlay")
            self.facts["differences_from_production"] = diffs

    def _twin(self, node: str) -> RemoteTwin:
        if node not in self._twin_of:
            raise TwinError(f"unknown node {node!r}")
        return self._twin_of[node]

    def converge(self, timeout: float, stable_for: float = 3.0) -> ConvergeResult:
        """Settled when, in one round, every host's routers were already still for the whole window."""
        twins = [twin for _, twin in self.parts]
        t0 = time.monotonic()
        settled_at = t0
        quiet = min(1.0, stable_for / 2)
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                return ConvergeResult(False, round(time.monotonic() - t0, 3), ["hosts did not settle together"])
            start = time.monotonic()
            results = _parallel(lambda tw, left=left: tw.converge(left, stable_for), twins)
            moving = [m for r in results if not r.converged for m in r.still_moving]
            if moving or not all(r.converged for r in results):
                return ConvergeResult(False, round(time.monotonic() - t0, 3), moving or ["a host did not settle"])
            latest = max(r.seconds for r in results)
            if len(twins) == 1 or latest <= quiet:
                if len(twins) == 1:
                    settled_at = start + latest
                return ConvergeResult(True, round(settled_at - t0, 3), [],
                                      down=sorted(d for r in results for d in r.down))
            settled_at = start + latest  # something moved this round: look again

    def snapshot(self, reachability: bool = True) -> dict[str, Any]:
        snaps = _parallel(lambda tw: tw.snapshot(reachability=False), [twin for _, twin in self.parts])
        nodes: dict[str, Any] = {}
        for snap in snaps:
            nodes.update(snap["nodes"])
        out: dict[str, Any] = {"nodes": dict(sorted(nodes.items()))}
        if reachability:
            routers = self.topology.routers()
            pairs, sampled, seed = reachability_pairs(self.topology.name, routers,
                                                      loopbacks_of({n: nodes[n] for n in routers if n in nodes}))
            by_twin: dict[int, list[tuple[str, str]]] = {}
            twins = [twin for _, twin in self.parts]
            for s, _, a in pairs:
                by_twin.setdefault(twins.index(self._twin(s)), []).append((s, a))
            found: dict[tuple[str, str], bool] = {}
            for res in _parallel(lambda item: twins[item[0]].ping_pairs(sorted(set(item[1]))), list(by_twin.items())):
                found.update(res)
            out["reachability"] = {"pairs": {f"{s}->{d}:{a}": found.get((s, a), False) for s, d, a in pairs},
                                   "sampled": sampled, "seed": seed}
        return out

    def fib(self) -> dict[str, Any]:
        """Every router's kernel FIB, from the host that runs it; links as the whole lab has them."""
        nodes: dict[str, Any] = {}
        for part in _parallel(lambda tw: tw.fib(), [twin for _, twin in self.parts]):
            nodes.update(part["nodes"])
        return {"nodes": dict(sorted(nodes.items())), "links": fib_links(self.topology)}

    def probe(self, src: str, address: str) -> dict[str, Any]:
        return self._twin(src).probe(src, address)

    def set_link(self, node: str, iface: str, up: bool) -> None:
        # A cross-host link's end is the VXLAN device: down at one end, like a veth end.
        self._twin(node).set_link(node, iface, up)

    def apply(self, node: str, lines: str) -> ApplyResult:
        return self._twin(node).apply(node, lines)

    def reach(self, src: str, address: str, count: int = 1) -> bool:
        return self._twin(src).reach(src, address, count)

    def running_config(self, node: str) -> str:
        return self._twin(node).running_config(node)

    def reload_config(self, node: str, config: str, test_only: bool = False) -> ReloadResult:
        return self._twin(node).reload_config(node, config, test_only)

    def teardown(self) -> None:
        errors = []
        for _, twin in self.parts:
            try:
                twin.teardown()
            except TwinError as exc:
                errors.append(str(exc))
        if errors:
            raise AgentError(" | ".join(errors))
