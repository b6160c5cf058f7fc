"""Inferred intent: the effects a change obviously means to have, derived from its lines and the lab.

Operators write changes as title, description and lines, rarely an `expect`. Without one,
every effect of a harmless announcement used to be "undeclared". Here the lines say what they
intend, in the same shape as a hand-written `expect` (docs/pipeline.md), so the operator can
read it, confirm or correct it:

- `ip route P …`, `network P`, `aggregate-address P`, a new interface address: P is announced
  (`prefixes_added`); `redistribute static|connected`: the router's static routes / connected
  subnets; `redistribute <protocol>`: routes of that protocol (any prefix, `*`). `no` forms withdraw.
- `neighbor X shutdown`, `no neighbor X`, an interface `shutdown`: the sessions and
  adjacencies over it end, on both sides (`sessions_removed`), the link's subnet is withdrawn
  and traffic moves to other paths (`prefixes_changed: *`). A removed interface address only
  withdraws its subnet: sessions that die with it stay undeclared (a renumbering that forgot
  the far end looks exactly like that).
- a new `neighbor X remote-as …`, `no neighbor X shutdown`: that session comes up (`sessions_added`).
- costs, metrics, local preference, prepends, weights, route-maps attached to a neighbour:
  paths move (`prefixes_changed: *`).
- descriptions, banners, log settings, and objects nothing references: no routing effect.

Losses are never inferred beyond the link or session the line names: a prefix that disappears
because a session went away is still undeclared, and blocks. A hand-written `expect` wins.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from preflight.core.change import ALL_NODES
from preflight.core.settle import config_statements
from twin.base import Topology
from twin.frrconf import config_model

ANY_PREFIX = "*"  # in inferred intent only: any prefix (route changes from a cost change, …)
_PATH_MOVERS = re.compile(r"^(no\s+)?(ip\s+ospf6?\s+cost|ipv6\s+ospf6\s+cost|set\s+(local-preference|metric|weight|"
                          r"as-path\s+prepend|origin|community|large-community)|neighbor\s+\S+\s+(route-map|weight|"
                          r"prefix-list|filter-list|distribute-list|as-override|allowas-in|next-hop-self|"
                          r"remove-private-AS|default-originate|route-reflector-client)|bgp\s+bestpath|"
                          r"distance|maximum-paths|auto-cost|default-information|table-map)")


def _net(text: str) -> str | None:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return None


def intent_infer(change: dict[str, Any], topology: Topology) -> dict[str, Any]:
    """The expect a reader would write for `change`, with why: {prefixes_added: {...}, ..., basis: [...]}."""
    added: set[str] = set()
    removed: set[str] = set()
    changed: set[str] = set()
    sessions_removed: set[tuple[str, str]] = set()
    sessions_added: set[tuple[str, str]] = set()
    basis: list[str] = []
    owners = _address_owners(topology)
    for device, text in sorted(change["devices"].items()):
        node = topology.nodes.get(device)
        base = (node.frr_conf or "") if node else ""
        model = config_model(base, None)
        for ctx, line in config_statements(text):
            top = ctx[0] if ctx else ""
            neg = line.startswith("no ")
            body = line[3:] if neg else line
            words = body.split()
            why = f"{device}: {line}"
            if words[:2] in (["ip", "route"], ["ipv6", "route"]) and len(words) > 2 and (p := _net(words[2])):
                (removed if neg else added).add(p)
                basis.append(f"{why} -> {'withdraws' if neg else 'announces'} {p}")
            elif top.startswith("router bgp") and words[:1] in (["network"], ["aggregate-address"]) and \
                    len(words) > 1 and (p := _net(words[1])):
                (removed if neg else added).add(p)
                basis.append(f"{why} -> {'withdraws' if neg else 'announces'} {p}")
            elif top.startswith("router") and words[:1] == ["redistribute"] and len(words) > 1:
                prefixes = _redistributed(words[1], model)
                (removed if neg else added).update(prefixes)
                basis.append(f"{why} -> {'withdraws' if neg else 'announces'} "
                             f"{', '.join(sorted(prefixes)) if prefixes != {ANY_PREFIX} else 'its ' + words[1] + ' routes'}")
            elif top.startswith("interface") and words[:2] in (["ip", "address"], ["ipv6", "address"]) and \
                    len(words) > 2 and (p := _net(words[2])):
                iface = top.split()[1]
                if neg:
                    # Only the subnet: sessions that die with the address are not obviously meant
                    # (a renumbering that forgets the far end looks the same), so they stay undeclared.
                    removed.add(p)
                    basis.append(f"{why} -> withdraws {p} (connected)")
                else:
                    added.add(p)
                    basis.append(f"{why} -> announces {p} (connected)")
            elif top.startswith("interface") and body == "shutdown":
                iface = top.split()[1]
                addrs = list(model.addresses.get(iface, {}))
                subnets = {q for a in addrs if (q := _net(a))}
                if neg:
                    added.update(subnets)
                    sessions_added.update(_sessions_over(device, iface, addrs, topology, model, owners))
                    basis.append(f"{why} -> {iface} comes up; its sessions come up")
                else:
                    removed.update(subnets)
                    changed.add(ANY_PREFIX)
                    sessions_removed.update(_sessions_over(device, iface, addrs, topology, model, owners))
                    basis.append(f"{why} -> {iface} goes down; its sessions end; traffic moves to other paths")
            elif top.startswith("router bgp") and words[:1] == ["neighbor"] and len(words) >= 2:
                peer = words[1]
                pair = _session_pair(device, peer, owners, model)
                if (len(words) == 2 and neg) or (words[2:3] == ["shutdown"] and not neg):
                    sessions_removed.update(pair)
                    changed.add(ANY_PREFIX)
                    basis.append(f"{why} -> the BGP session {device}-{peer} ends; traffic moves to other paths")
                elif (words[2:3] == ["shutdown"] and neg) or (words[2:3] == ["remote-as"] and not neg and
                                                              peer not in model.neighbors):
                    sessions_added.update(pair)
                    changed.add(ANY_PREFIX)
                    basis.append(f"{why} -> the BGP session {device}-{peer} comes up")
                elif _PATH_MOVERS.match(line):
                    changed.add(ANY_PREFIX)
                    basis.append(f"{why} -> paths may move")
            elif _PATH_MOVERS.match(line):
                changed.add(ANY_PREFIX)
                basis.append(f"{why} -> paths may move")
    return {
        "prefixes_added": {ALL_NODES: sorted(added)} if added else {},
        "prefixes_removed": {ALL_NODES: sorted(removed)} if removed else {},
        "prefixes_changed": {ALL_NODES: sorted(changed)} if changed else {},
        "sessions_removed": [{"node": n, "peer": p} for n, p in sorted(sessions_removed)],
        "sessions_added": [{"node": n, "peer": p} for n, p in sorted(sessions_added)],
        "basis": basis,
        "inferred": True,
    }


def intent_is_empty(intent: dict[str, Any]) -> bool:
    return not any(intent.get(k) for k in ("prefixes_added", "prefixes_removed", "prefixes_changed",
                                           "sessions_removed", "sessions_added"))


def _redistributed(source: str, model: Any) -> set[str]:
    if source == "connected":
        return {p for addrs in model.addresses.values() for a in addrs if (p := _net(a))}
    if source == "static":
        return {p for r in model.static_routes if (p := _net(r.split()[0]))}
    return {ANY_PREFIX}


def _address_owners(topology: Topology) -> dict[str, tuple[str, str]]:
    """address -> (router, interface), from every router's config."""
    owners: dict[str, tuple[str, str]] = {}
    for name in topology.routers():
        for iface, addrs in config_model(topology.nodes[name].frr_conf or "", None).addresses.items():
            for a in addrs:
                owners[a.split("/")[0]] = (name, iface)
    return owners


def _session_pair(device: str, peer: str, owners: dict[str, tuple[str, str]], model: Any) -> set[tuple[str, str]]:
    """Both ends of a BGP session: (device, peer) and (peer's router, device's address facing it)."""
    out = {(device, peer)}
    owner = owners.get(peer)
    if owner is None:
        return out
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        return out
    for addrs in model.addresses.values():
        for a in addrs:
            try:
                iface = ipaddress.ip_interface(a)
            except ValueError:
                continue
            if peer_ip in iface.network:
                out.add((owner[0], str(iface.ip)))
    return out


def _sessions_over(device: str, iface: str, addrs: list[str], topology: Topology, model: Any,
                   owners: dict[str, tuple[str, str]]) -> set[tuple[str, str]]:
    """BGP sessions whose peer lies on the interface's subnets, and the OSPF/BFD adjacencies on it."""
    out: set[tuple[str, str]] = set()
    nets = []
    for a in addrs:
        try:
            nets.append(ipaddress.ip_interface(a).network)
        except ValueError:
            continue
    for peer in model.neighbors:
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            continue
        if any(ip in n for n in nets):
            out |= _session_pair(device, peer, owners, model)
    out.add((device, f"*@{iface}"))  # OSPF/OSPFv3 adjacencies and BFD sessions on that interface
    for link in topology.links:
        for ep, other in ((link.a, link.b), (link.b, link.a)):
            if ep.node == device and ep.iface == iface:
                out.add((other.node, f"*@{other.iface}"))
    return out
