"""A router's kernel forwarding table as plain data: what the daemons really installed.

`fib_normalize` turns the JSON of `ip -j -4 route show table all`, `ip -j -6 route show table all`
and `ip -j addr show` (read inside the router's namespace) into::

    {"routes": [{"dst": "10.254.0.4/32", "table": "main", "type": "unicast",
                 "nexthops": [{"via": "10.1.0.2", "dev": "eth2"}, {"via": "10.1.0.0", "dev": "eth1"}]},
                {"dst": "10.1.0.1/32", "table": "local", "type": "local", "nexthops": [{"dev": "eth1"}]},
                {"dst": "192.0.2.0/24", "table": "main", "type": "blackhole", "nexthops": []}],
     "addresses": [{"dev": "eth1", "address": "10.1.0.1/31"}],
     "skipped_tables": ["1001"]}

Kept: tables `local`, `main` and `default` (the three the kernel's default rules consult, in that
order); types unicast, local, broadcast, anycast, blackhole, unreachable, prohibit, throw.
Dropped on purpose: multicast entries, loopback 127/8 and ::1, and IPv6 link-local fe80::/10
destinations (they never cross a router). Tables of VRFs or policy routing are listed in
`skipped_tables`, not modelled (docs/pipeline.md: destination-based forwarding of the default
VRF only). `fib_links` gives each router interface's neighbours from the topology, which the
data-plane computation needs to resolve a next hop to the router that owns it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .base import Topology

KEPT_TABLES = ("local", "main", "default")
KEPT_TYPES = frozenset({"unicast", "local", "broadcast", "anycast", "blackhole", "unreachable", "prohibit",
                        "throw"})
_LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")
_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")


def _dst(entry: dict[str, Any], v6: bool) -> str | None:
    raw = str(entry.get("dst", ""))
    if raw == "default":
        raw = "::/0" if v6 else "0.0.0.0/0"
    try:
        net = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        return None
    if net.version == 6 and (net.subnet_of(_LINK_LOCAL_V6) or net == ipaddress.ip_network("::1/128")):
        return None
    if net.version == 4 and net.subnet_of(_LOOPBACK_V4):
        return None
    return str(net)


def _nexthops(entry: dict[str, Any]) -> list[dict[str, str]]:
    hops = entry.get("nexthops") or [entry]
    out = []
    for h in hops:
        hop: dict[str, str] = {}
        if h.get("gateway"):
            hop["via"] = str(h["gateway"])
        if h.get("dev"):
            hop["dev"] = str(h["dev"])
        if "linkdown" in (h.get("flags") or []) or "dead" in (h.get("flags") or []):
            hop["down"] = "yes"
        if hop:
            out.append(hop)
    return sorted(out, key=lambda x: (x.get("via", ""), x.get("dev", "")))


def fib_normalize(routes_v4: list[dict[str, Any]], routes_v6: list[dict[str, Any]],
                  addresses: list[dict[str, Any]]) -> dict[str, Any]:
    """One router's FIB (see the module docstring) from `ip -j` output; sorted, JSON-able."""
    routes: list[dict[str, Any]] = []
    skipped: set[str] = set()
    for v6, entries in ((False, routes_v4), (True, routes_v6)):
        for e in entries or []:
            table = str(e.get("table", "main"))
            if table not in KEPT_TABLES:
                skipped.add(table)
                continue
            rtype = str(e.get("type", "unicast"))
            if rtype not in KEPT_TYPES:
                continue
            dst = _dst(e, v6)
            if dst is None:
                continue
            hops = [] if rtype in ("blackhole", "unreachable", "prohibit", "throw") else _nexthops(e)
            routes.append({"dst": dst, "table": table, "type": rtype, "nexthops": hops})
    # An IPv6 route can appear once per metric; the kernel uses the lowest, which `ip` lists first.
    seen: set[tuple[str, str]] = set()
    unique = []
    for r in routes:
        key = (r["table"], r["dst"])
        if key in seen and r["type"] not in ("local", "broadcast", "anycast"):
            continue
        seen.add(key)
        unique.append(r)
    addrs = []
    for link in addresses or []:
        for info in link.get("addr_info") or []:
            try:
                iface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            except (KeyError, ValueError):
                continue
            if iface.ip.is_loopback:
                continue  # link-locals stay: an IPv6 next hop is often one (BGP unnumbered, OSPFv3)
            addrs.append({"dev": str(link.get("ifname")), "address": str(iface)})
    return {"routes": sorted(unique, key=lambda r: (r["table"], r["dst"], r["type"])),
            "addresses": sorted(addrs, key=lambda a: (a["dev"], a["address"])),
            "skipped_tables": sorted(skipped)}


def fib_links(topology: Topology) -> dict[str, list[str]]:
    """{"leaf1:eth1": ["spine1:eth1"], ...}: who is on the other end of each router interface.

    A LAN segment (`kind: bridge`) joins every router port on it, so each sees all the others.
    """
    ends: dict[str, list[str]] = {}
    lan: dict[str, list[str]] = {}
    for link in topology.links:
        a, b = link.a, link.b
        roles = (topology.nodes[a.node].role, topology.nodes[b.node].role)
        if roles[0] == "bridge" or roles[1] == "bridge":
            bridge, port = (a, b) if roles[0] == "bridge" else (b, a)
            lan.setdefault(bridge.node, []).append(f"{port.node}:{port.iface}")
            continue
        ends.setdefault(f"{a.node}:{a.iface}", []).append(f"{b.node}:{b.iface}")
        ends.setdefault(f"{b.node}:{b.iface}", []).append(f"{a.node}:{a.iface}")
    for ports in lan.values():
        for p in ports:
            ends.setdefault(p, []).extend(q for q in ports if q != p)
    return {k: sorted(v) for k, v in sorted(ends.items())}
