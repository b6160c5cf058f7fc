"""Failure scenarios (N-1) before and after the change: does the change keep the redundancy?

A scenario fails one link (`link_down: {node, interface}`) or one router (`node_down: NODE`, all
of its links down) in a settled twin, lets it settle, snapshots, and restores. The pipeline runs
the same scenarios on the baseline and on the changed network; `resilience_compare` then names
what survives a scenario before the change but not after it: reachability between loopbacks,
BGP sessions, routes. Effects the change has without any failure (already judged by the diff)
are left out, so what remains is redundancy the change removed: `REDUNDANCY_LOST`.

Scenarios come from the lab's `aegis.yml` (`failures:`) and, by default, from the links the
change's devices sit on (one scenario per link, failed on the device's side), bounded by
`max_scenarios` (settings.AEGIS_FAILURE_SCENARIOS_MAX, default 8).

    failures:
      - link_down: {node: leaf3, interface: eth2}
      - node_down: spine1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from twin.base import Topology, TopologyError

DEFAULT_MAX_SCENARIOS = 8
ALL_SCENARIOS = "*"  # in expect.redundancy_removed: every scenario may lose redundancy
MAX_LOST_SHOWN = 3


def failures_option(value: object) -> str | None:
    """The `failures` run option as given on the CLI, the form or the API: all | none | auto | N.

    Returns the normalised value (None for auto/empty); raises ValueError with what to write.
    """
    text = str(value).strip().lower() if value is not None else ""
    if text in ("", "auto"):
        return None
    if text in ("all", "none") or (text.isdigit() and len(text) <= 4):
        return text
    raise ValueError(f"failures must be all, none, auto or a number of scenarios, not {value!r}")


def scenario_name(kind: str, node: str, interface: str | None = None) -> str:
    return f"link_down {node}:{interface}" if kind == "link_down" else f"node_down {node}"


def _router_links(topology: Topology) -> list[tuple[str, str, str, str]]:
    """(node, iface, peer node, peer iface) once per link, both ends FRR routers or a LAN."""
    out = []
    for link in topology.links:
        a, b = link.a, link.b
        if topology.nodes[a.node].role == "frr" or topology.nodes[b.node].role == "frr":
            out.append((a.node, a.iface, b.node, b.iface))
    return out


def failures_load(lab_dir: str | Path, topology: Topology) -> list[dict[str, str]]:
    """The `failures:` of the lab's aegis.yml, validated; [] when there are none."""
    path = Path(lab_dir) / "aegis.yml"
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(errors="replace")) or {}
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from None
    entries = data.get("failures") or [] if isinstance(data, dict) else []
    if not isinstance(entries, list):
        raise TopologyError(f"{path}: `failures:` must be a list of link_down / node_down entries")
    ifaces = {(n, i) for n, i, pn, pi in _router_links(topology)} | {(pn, pi) for n, i, pn, pi in _router_links(topology)}
    out = []
    for k, entry in enumerate(entries, start=1):
        where = f"{path}: failure #{k}"
        if not isinstance(entry, dict) or len(entry) != 1:
            raise TopologyError(f"{where}: write `- link_down: {{node: NODE, interface: IFACE}}` or `- node_down: NODE`")
        kind, spec = next(iter(entry.items()))
        if kind == "link_down":
            if not isinstance(spec, dict) or set(spec) != {"node", "interface"}:
                raise TopologyError(f"{where}: link_down needs exactly {{node, interface}}")
            node, iface = str(spec["node"]), str(spec["interface"])
            if (node, iface) not in ifaces:
                raise TopologyError(f"{where}: {node}:{iface} is not a link end in lab {topology.name!r}")
            out.append({"name": scenario_name(kind, node, iface), "kind": kind, "node": node, "interface": iface,
                        "source": "lab"})
        elif kind == "node_down":
            node = str(spec)
            if node not in topology.nodes or topology.nodes[node].role != "frr":
                raise TopologyError(f"{where}: node_down {node!r} is not a router of lab {topology.name!r}")
            out.append({"name": scenario_name(kind, node), "kind": kind, "node": node, "source": "lab"})
        else:
            raise TopologyError(f"{where}: unknown failure {kind!r}; one of link_down, node_down")
    return out


def scenarios_select(topology: Topology, devices: list[str], declared: list[dict[str, str]],
                     mode: str | int | None = None, max_scenarios: int = DEFAULT_MAX_SCENARIOS
                     ) -> list[dict[str, str]]:
    """Which scenarios a run executes.

    mode None/"auto": the lab's declared ones, then one per link of the change's devices, at most
    `max_scenarios`; "all": declared + every link of the lab, unbounded; "none": none; an int N:
    as auto with at most N.
    """
    if mode in ("none", 0):
        return []
    limit = None if mode == "all" else int(mode) if isinstance(mode, int) or str(mode).isdigit() else max_scenarios
    picked: list[dict[str, str]] = list(declared)
    names = {s["name"] for s in picked}
    wanted = set(devices)
    for n, i, pn, pi in _router_links(topology):
        # Failed on the change's side (on a router's side for "all"): the far end sees the carrier go.
        if n in wanted and topology.nodes[n].role == "frr":
            node, iface = n, i
        elif pn in wanted and topology.nodes[pn].role == "frr":
            node, iface = pn, pi
        elif mode == "all":
            node, iface = (n, i) if topology.nodes[n].role == "frr" else (pn, pi)
        else:
            continue
        name = scenario_name("link_down", node, iface)
        if name not in names:
            names.add(name)
            picked.append({"name": name, "kind": "link_down", "node": node, "interface": iface, "source": "derived"})
    return picked if limit is None else picked[:limit]


def scenario_interfaces(topology: Topology, scenario: dict[str, str]) -> list[tuple[str, str]]:
    """The (router, interface) pairs a scenario takes down."""
    if scenario["kind"] == "link_down":
        return [(scenario["node"], scenario["interface"])]
    node = scenario["node"]
    ends = [(n, i) for n, i, pn, pi in _router_links(topology) if n == node]
    ends += [(pn, pi) for n, i, pn, pi in _router_links(topology) if pn == node]
    return sorted(ends)


def survivors(snapshot: dict[str, Any]) -> set[str]:
    """What works in a snapshot, as comparable items: reachable pairs, sessions up, routes present."""
    out: set[str] = set()
    for pair, ok in (snapshot.get("reachability") or {}).get("pairs", {}).items():
        if ok:
            out.add(f"reach {pair}")
    for node, data in (snapshot.get("nodes") or {}).items():
        for peer, info in (data.get("bgp") or {}).items():
            if info.get("state") == "Established":
                out.add(f"session {node} {peer}")
        for prefix in data.get("routes") or {}:
            out.add(f"route {node} {prefix}")
    return out


def item_text(item: str) -> str:
    """'reach leaf1->leaf3:10.254.0.5' -> 'leaf1 -> leaf3 (10.254.0.5) reachable', etc."""
    kind, _, rest = item.partition(" ")
    if kind == "reach":
        pair, _, addr = rest.rpartition(":")
        src, _, dst = pair.partition("->")
        return f"{src} -> {dst} ({addr})"
    node, _, what = rest.partition(" ")
    if kind == "session":
        return f"{node}: BGP session to {what}"
    return f"{node}: route {what}"


def side_summary(items: set[str]) -> dict[str, int]:
    return {"reachable_pairs": sum(i.startswith("reach ") for i in items),
            "sessions_up": sum(i.startswith("session ") for i in items),
            "routes": sum(i.startswith("route ") for i in items)}


def resilience_compare(scenario: dict[str, str], before: set[str], after: set[str], s0: set[str], s1: set[str]
                       ) -> dict[str, Any]:
    """One scenario's row: what survives it before the change and not after (the change's own
    effects without a failure, S0 vs S1, left out)."""
    change_lost, change_gained = s0 - s1, s1 - s0
    lost = sorted(before - after - change_lost)
    gained = sorted(after - before - change_gained)
    return {"name": scenario["name"], "kind": scenario["kind"], "source": scenario.get("source", "derived"),
            "before": side_summary(before), "after": side_summary(after),
            "lost": [item_text(i) for i in lost], "gained": [item_text(i) for i in gained]}


def redundancy_declared(name: str, declared: list[str]) -> bool:
    return ALL_SCENARIOS in declared or name in declared


def lost_message(row: dict[str, Any]) -> str:
    shown = "; ".join(row["lost"][:MAX_LOST_SHOWN]) + (
        f"; and {len(row['lost']) - MAX_LOST_SHOWN} more" if len(row["lost"]) > MAX_LOST_SHOWN else "")
    return (f"under {row['name']}, {len(row['lost'])} thing(s) that survive it before the change are lost after "
            f"it: {shown}")
