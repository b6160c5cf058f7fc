"""Diff two normalised snapshots and classify every effect against the change's `expect`.

Effects per node: routes added / removed / changed (next hops, protocol, distance,
metric), BGP sessions lost / gained, OSPF/OSPFv3 adjacencies and BFD peers lost / gained;
and data-plane reachability pairs lost / gained. Each effect is then *intended* (declared
in `expect`) or *undeclared*. Undeclared losses block a change; undeclared gains and
changes raise its risk (docs/risk-rubric.md).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from preflight.core.change import ALL_NODES

# A route that now ends in a blackhole (Null0, reject, unreachable) drops the traffic it carried,
# so an undeclared one is a loss like a removed route, not merely a change.
ANY_PREFIX = "*"
LOSS_KINDS = ("route_removed", "route_blackholed", "session_lost", "adjacency_lost", "reachability_lost")
BLACKHOLE_HOPS = frozenset({"blackhole", "null0", "reject", "unreachable"})


def snapshot_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per-node and reachability differences from `before` to `after` (sorted, JSON-able)."""
    nodes_out: dict[str, Any] = {}
    b_nodes = before.get("nodes", {})
    a_nodes = after.get("nodes", {})
    for name in sorted(set(b_nodes) | set(a_nodes)):
        b, a = b_nodes.get(name, {}), a_nodes.get(name, {})
        entry = _node_diff(b, a)
        if any(entry.values()):
            nodes_out[name] = entry
    b_pairs = before.get("reachability", {}).get("pairs", {})
    a_pairs = after.get("reachability", {}).get("pairs", {})
    lost = sorted(k for k, ok in b_pairs.items() if ok and a_pairs.get(k) is False)
    gained = sorted(k for k, ok in a_pairs.items() if ok and b_pairs.get(k) is False)
    return {"nodes": nodes_out, "reachability_lost": lost, "reachability_gained": gained}


def _node_diff(b: dict[str, Any], a: dict[str, Any]) -> dict[str, list[Any]]:
    br, ar = b.get("routes", {}), a.get("routes", {})
    added = [{"prefix": p, **_route_brief(ar[p])} for p in sorted(set(ar) - set(br), key=_prefix_key)]
    removed = [{"prefix": p, **_route_brief(br[p])} for p in sorted(set(br) - set(ar), key=_prefix_key)]
    changed = [{"prefix": p, "before": _route_brief(br[p]), "after": _route_brief(ar[p])}
               for p in sorted(set(br) & set(ar), key=_prefix_key) if br[p] != ar[p]]
    bb, ab = b.get("bgp", {}), a.get("bgp", {})
    sessions_lost = [{"peer": p, "before": bb[p].get("state"), "after": ab.get(p, {}).get("state", "absent")}
                     for p in sorted(bb) if _up(bb[p]) and not _up(ab.get(p))]
    sessions_gained = [{"peer": p, "before": bb.get(p, {}).get("state", "absent"), "after": ab[p].get("state")}
                       for p in sorted(ab) if _up(ab[p]) and not _up(bb.get(p))]
    adj_lost, adj_gained = [], []
    for proto in ("ospf", "ospf6", "bfd"):
        bo, ao = b.get(proto, {}), a.get(proto, {})
        for key in sorted(set(bo) | set(ao)):
            was, now = _up(bo.get(key)), _up(ao.get(key))
            item = {"peer": f"{proto}:{key}", "before": _state(bo.get(key)), "after": _state(ao.get(key))}
            if was and not now:
                adj_lost.append(item)
            elif now and not was:
                adj_gained.append(item)
    return {"routes_added": added, "routes_removed": removed, "routes_changed": changed,
            "sessions_lost": sessions_lost, "sessions_gained": sessions_gained,
            "adjacencies_lost": adj_lost, "adjacencies_gained": adj_gained}


@lru_cache(maxsize=65536)
def _prefix_key(prefix: str) -> tuple[int, int, int]:
    try:
        net = ipaddress.ip_network(prefix, strict=False)
        return (net.version, int(net.network_address), net.prefixlen)
    except ValueError:
        return (9, 0, 0)


def _route_brief(route: dict[str, Any]) -> dict[str, Any]:
    return {k: route.get(k) for k in ("protocol", "distance", "metric", "nexthops") if k in route}


def _state(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "absent"
    return str(entry.get("state") or entry.get("status") or "unknown")


def _up(entry: dict[str, Any] | None) -> bool:
    if not entry:
        return False
    state = str(entry.get("state") or entry.get("status") or "")
    return state in ("Established", "up") or state.startswith("Full")


def diff_is_empty(diff: dict[str, Any]) -> bool:
    return not diff["nodes"] and not diff["reachability_lost"] and not diff["reachability_gained"]


def diff_items(diff: dict[str, Any]) -> list[dict[str, Any]]:
    """The diff flattened into effect items {kind, node, key, message}, in a stable order."""
    items: list[dict[str, Any]] = []
    for node, entry in diff["nodes"].items():
        for r in entry["routes_added"]:
            items.append(_item("route_added", node, r["prefix"], f"{node} gained route {r['prefix']} "
                                                                   f"({r.get('protocol')})"))
        for r in entry["routes_removed"]:
            items.append(_item("route_removed", node, r["prefix"], f"{node} lost route {r['prefix']} "
                                                                     f"({r.get('protocol')})"))
        for r in entry["routes_changed"]:
            kind = "route_blackholed" if _blackholed(r["before"], r["after"]) else "route_changed"
            what = "now drops traffic" if kind == "route_blackholed" else "changed"
            items.append(_item(kind, node, r["prefix"],
                               f"{node} route {r['prefix']} {what}: {_brief(r['before'])} -> {_brief(r['after'])}"))
        for s in entry["sessions_lost"]:
            items.append(_item("session_lost", node, s["peer"],
                               f"{node} lost BGP session to {s['peer']} ({s['before']} -> {s['after']})"))
        for s in entry["sessions_gained"]:
            items.append(_item("session_gained", node, s["peer"], f"{node} gained BGP session to {s['peer']}"))
        for s in entry["adjacencies_lost"]:
            items.append(_item("adjacency_lost", node, s["peer"],
                               f"{node} lost adjacency {s['peer']} ({s['before']} -> {s['after']})"))
        for s in entry["adjacencies_gained"]:
            items.append(_item("adjacency_gained", node, s["peer"], f"{node} gained adjacency {s['peer']}"))
    for pair in diff["reachability_lost"]:
        items.append(_item("reachability_lost", _pair_src(pair), pair, f"reachability lost: {pair}"))
    for pair in diff["reachability_gained"]:
        items.append(_item("reachability_gained", _pair_src(pair), pair, f"reachability gained: {pair}"))
    return items


def _is_blackhole(route: dict[str, Any]) -> bool:
    hops = [str(h).split("@", 1)[0].lower() for h in route.get("nexthops") or []]
    return bool(hops) and all(h in BLACKHOLE_HOPS for h in hops)


def _blackholed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return _is_blackhole(after) and not _is_blackhole(before)


def _brief(route: dict[str, Any]) -> str:
    hops = ",".join(route.get("nexthops") or []) or "-"
    return f"{route.get('protocol')} via {hops} metric {route.get('metric')}"


def _item(kind: str, node: str, key: str, message: str) -> dict[str, Any]:
    return {"kind": kind, "node": node, "key": key, "message": message, "loss": kind in LOSS_KINDS}


def _pair_src(pair: str) -> str:
    return pair.split("->", 1)[0]


def _pair_address(pair: str) -> str:
    return pair.rsplit(":", 1)[-1] if "->" in pair else pair


def diff_classify(diff: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
    """Split the diff's effects into intended and undeclared; list expected effects not seen."""
    intended: list[dict[str, Any]] = []
    undeclared: list[dict[str, Any]] = []
    for item in diff_items(diff):
        (intended if _declared(item, expect) else undeclared).append(item)
    missing = _missing(diff, expect)
    return {"intended": intended, "undeclared": undeclared, "expected_missing": missing}


def _node_prefixes(expect: dict[str, Any], key: str, node: str) -> list[str]:
    per_node = expect.get(key) or {}
    return list(per_node.get(node, [])) + list(per_node.get(ALL_NODES, []))


def _listed(prefix: str, prefixes: list[str]) -> bool:
    # "*" as a prefix comes only from inferred intent (preflight/core/intent.py): any prefix.
    return prefix in prefixes or ANY_PREFIX in prefixes


def _declared(item: dict[str, Any], expect: dict[str, Any]) -> bool:
    kind, node, key = item["kind"], item["node"], item["key"]
    if kind == "route_added":
        return _listed(key, _node_prefixes(expect, "prefixes_added", node))
    if kind == "route_removed":
        return _listed(key, _node_prefixes(expect, "prefixes_removed", node))
    if kind == "route_changed":
        return _listed(key, _node_prefixes(expect, "prefixes_changed", node))
    if kind == "route_blackholed":
        # A blackhole is a loss: only a prefix named as removed or changed covers it, never "*".
        return key in (_node_prefixes(expect, "prefixes_changed", node)
                       + _node_prefixes(expect, "prefixes_removed", node))
    if kind in ("session_lost", "adjacency_lost"):
        return _session_declared(expect.get("sessions_removed") or [], node, key)
    if kind in ("session_gained", "adjacency_gained"):
        return _session_declared(expect.get("sessions_added") or [], node, key)
    if kind == "reachability_lost":
        return _covered(_pair_address(key), _node_prefixes(expect, "prefixes_removed", node))
    if kind == "reachability_gained":
        return _covered(_pair_address(key), _node_prefixes(expect, "prefixes_added", node))
    return False


def _session_declared(declared: list[dict[str, str]], node: str, key: str) -> bool:
    bare = key.split(":", 1)[1] if key.split(":", 1)[0] in ("ospf", "ospf6", "bfd") else key
    # BFD keys are "peer|interface[|…]": the peer address alone names it too.
    # "*@IFACE" (inferred intent) names every adjacency over that interface.
    parts = bare.split("|")
    iface = bare.split("@", 1)[1] if "@" in bare else (parts[1] if len(parts) > 1 else None)
    return any(s["node"] in (node, ALL_NODES) and (s["peer"] in (key, bare, parts[0]) or
                                                   (iface is not None and s["peer"] == f"*@{iface}"))
               for s in declared)


def _covered(address: str, prefixes: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for p in prefixes:
        if p == ANY_PREFIX:
            return True
        try:
            if ip in ipaddress.ip_network(p, strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False


def _missing(diff: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Declared route effects the twin did not show (the change may not do what it says)."""
    out: list[str] = []
    nodes = diff["nodes"]
    for key, field in (("prefixes_added", "routes_added"), ("prefixes_removed", "routes_removed"),
                       ("prefixes_changed", "routes_changed")):
        for node, prefixes in (expect.get(key) or {}).items():
            if node == ALL_NODES:
                continue  # "*" means "wherever it shows", not "on every node"
            seen = {r["prefix"] for r in nodes.get(node, {}).get(field, [])}
            out += [f"{node}: {key.replace('prefixes_', 'prefix ')} {p} was declared but not seen"
                    for p in prefixes if p not in seen]
    return sorted(out)
