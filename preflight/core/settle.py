"""How long the network must be watched after a change before its state can be believed.

The twin's convergence predicate (sessions up, FIB still for `stable_for`) cannot see a loss
that has not happened yet: when a change takes away the path under a BGP session without
taking down an interface on either end, the far side keeps the session Established until its
hold timer expires (9 s with `frr defaults datacenter`, 180 s with FRR's traditional
defaults); an OSPF neighbour that goes silent is dropped only after its dead interval (40 s by
default); a BFD peer after its detect time. A snapshot taken before that reports the session
as up. So when a change touches links, sessions or timers, the settle window after the apply
must cover the relevant protocol timers of the lab, read from the lab's own configs, bounded
by the converge timeout.

`settle_window()` is a pure function of the lab's configs and the change: no twin, no clock.
The pipeline (preflight/core/pipeline.py) makes sure `converge_change` is not declared
settled before `seconds` after the apply returned; how the twin waits is the twin's business
(twin/netns.py). Contract in docs/dev/CONTRACTS.md.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from twin.base import Topology

# FRR 8.4 defaults (lib/defaults, bgpd/bgp_vty.c, ospfd/ospf_interface.h, bfdd/bfd.h).
BGP_HOLD_DATACENTER_S = 9.0  # keepalive 3, hold 9
BGP_HOLD_TRADITIONAL_S = 180.0  # keepalive 60, hold 180
OSPF_DEAD_DEFAULT_S = 40.0  # FRR does not derive dead from hello: 40 s unless set
BFD_DETECT_MULTIPLIER = 3
BFD_RX_MS = 300

# Lines that can take a link down or take away what a session runs over. An added address
# cannot end a session (an address added to a loopback used to cost the campus lab a 9 s wait
# for nothing); its removal can, and a renumbering always comes with one.
_LINK = re.compile(r"^(shutdown|no\s+ip\s+address|no\s+ipv6\s+address|(no\s+)?link-detect|(no\s+)?mtu)\b")
# Lines that create, remove or re-parameterise a routing session or adjacency.
_BGP_SESSION = re.compile(r"^(no\s+)?(neighbor\s+\S+\s+(remote-as|shutdown|update-source|ebgp-multihop|ttl-security|"
                          r"interface|peer-group|local-as|password|bfd|capability|passive|disable-connected-check)"
                          r"|neighbor\s+\S+$|bgp\s+router-id)")
_OSPF_SESSION = re.compile(r"^(no\s+)?(ip\s+ospf\s+(area|network|passive|authentication|mtu-ignore)|"
                           r"ipv6\s+ospf6\s+(area|network|passive|mtu-ignore)|network\s+\S+\s+area|"
                           r"passive-interface|ospf6?\s+router-id|area\s+\S+\s+(stub|nssa)|"
                           r"interface\s+\S+\s+area)")
_BFD_SESSION = re.compile(r"^(no\s+)?(peer\s+\S+|profile\s+\S+|bfd\b|.*\bbfd\b)")
_TIMER = re.compile(r"(timers|dead-interval|hello-interval|detect-multiplier|receive-interval|transmit-interval)")

_BGP_TIMERS = re.compile(r"^timers\s+bgp\s+(\d+)\s+(\d+)")
_NBR_TIMERS = re.compile(r"^neighbor\s+(\S+)\s+timers\s+(\d+)\s+(\d+)")
_NBR_DECL = re.compile(r"^neighbor\s+(\S+)\s+(remote-as|interface|peer-group)\b")
_OSPF_DEAD = re.compile(r"^ip\s+ospf\s+dead-interval\s+(minimal|\d+)")
_OSPF6_DEAD = re.compile(r"^ipv6\s+ospf6\s+dead-interval\s+(\d+)")
_OSPF_ON_IF = re.compile(r"^ip\s+ospf\s+area\s+")
_OSPF6_ON_IF = re.compile(r"^ipv6\s+ospf6\s+area\s+")
_OSPF_NETWORK = re.compile(r"^network\s+(\S+)\s+area\s+")
_OSPF6_IF_AREA = re.compile(r"^interface\s+(\S+)\s+area\s+")
_ADDRESS = re.compile(r"^ip\s+address\s+(\S+)")
_BFD_MULT = re.compile(r"^detect-multiplier\s+(\d+)")
_BFD_RX = re.compile(r"^receive-interval\s+(\d+)")


@dataclass
class SettleWindow:
    """The minimum time to watch after the apply, and what set it."""

    seconds: float  # 0.0: the change touches no link, session or timer; the twin's own rule applies
    timer: str | None = None  # bgp_hold | ospf_dead | ospf6_dead | bfd_detect
    node: str | None = None  # the router whose timer it is
    subject: str | None = None  # peer or interface the timer belongs to
    source: str = ""  # where the value came from, e.g. "neighbor 10.0.23.0 timers 3 9" or "frr defaults datacenter"
    timer_seconds: float = 0.0  # the timer itself, before the converge-timeout bound
    bounded: bool = False  # True when the converge timeout cut the window short
    touches: list[str] = field(default_factory=list)  # why the window applies: "link r2:eth2", "bgp session", ...

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Timer:
    kind: str
    node: str
    subject: str
    seconds: float
    source: str


def config_statements(text: str) -> list[tuple[tuple[str, ...], str]]:
    """(context, statement) pairs of an FRR config: indentation and `exit` follow vtysh's nesting."""
    out: list[tuple[tuple[str, ...], str]] = []
    ctx: list[str] = []
    for raw in text.splitlines():
        if not raw.strip() or raw.strip().startswith(("!", "#")):
            continue
        indent = len(raw) - len(raw.lstrip())
        line = " ".join(raw.split())
        if line in ("exit", "end", "exit-address-family", "exit-vrf", "quit"):
            if line == "exit-address-family" and len(ctx) > 1:
                ctx = ctx[:1]
            elif ctx:
                ctx = ctx[:-1] if line != "end" else []
            continue
        if indent == 0:
            ctx = []
        opener = re.match(r"^(router\s+\S+|interface\s+\S+|bfd$|peer\s+\S+|profile\s+\S+|address-family\s+.*|"
                          r"route-map\s+\S+|vrf\s+\S+|key\s+chain)", line)
        if opener and (indent == 0 or line.startswith(("address-family", "peer ", "profile "))):
            if line.startswith(("address-family", "peer ", "profile ")):
                ctx = ctx[:1] + [line]
            else:
                ctx = [line]
            out.append((tuple(ctx[:-1]), line))
            continue
        out.append((tuple(ctx), line))
    return out


def _lab_timers(topology: Topology) -> list[_Timer]:
    """Every BGP hold, OSPF dead and BFD detect time the lab's configs set (or default to)."""
    owners: dict[str, str] = {}  # address -> router
    for name in topology.routers():
        for ctx, line in config_statements(topology.nodes[name].frr_conf or ""):
            m = _ADDRESS.match(line)
            if m and ctx and ctx[0].startswith("interface"):
                owners[m.group(1).split("/")[0]] = name
    per_node: dict[str, dict[str, tuple[float, str]]] = {}
    timers: list[_Timer] = []
    for name in topology.routers():
        node = topology.nodes[name]
        text = node.frr_conf or ""
        datacenter = bool(re.search(r"^frr defaults datacenter\b", text, re.M))
        default_hold = BGP_HOLD_DATACENTER_S if datacenter else BGP_HOLD_TRADITIONAL_S
        default_src = "frr defaults datacenter" if datacenter else "FRR default (traditional)"
        bgp_global: tuple[float, str] | None = None
        peers: dict[str, tuple[float, str]] = {}
        declared: list[str] = []
        ospf_ifs: dict[str, tuple[float, str]] = {}
        ospf_enabled: set[str] = set()
        ospf_networks: list[str] = []
        ospf6_ifs: dict[str, tuple[float, str]] = {}
        ospf6_enabled: set[str] = set()
        if_addr: dict[str, list[str]] = {}
        bfd_mult, bfd_rx, bfd_src = BFD_DETECT_MULTIPLIER, BFD_RX_MS, "FRR default (3 x 300 ms)"
        for ctx, line in config_statements(text):
            top = ctx[0] if ctx else ""
            if top.startswith("router bgp"):
                if m := _BGP_TIMERS.match(line):
                    bgp_global = (float(m.group(2)), line)
                elif m := _NBR_TIMERS.match(line):
                    peers[m.group(1)] = (float(m.group(3)), line)
                elif m := _NBR_DECL.match(line):
                    declared.append(m.group(1))
            elif top.startswith("interface"):
                ifname = top.split()[1]
                if m := _OSPF_DEAD.match(line):
                    ospf_ifs[ifname] = (1.0 if m.group(1) == "minimal" else float(m.group(1)), line)
                elif m := _OSPF6_DEAD.match(line):
                    ospf6_ifs[ifname] = (float(m.group(1)), line)
                elif _OSPF_ON_IF.match(line):
                    ospf_enabled.add(ifname)
                elif _OSPF6_ON_IF.match(line):
                    ospf6_enabled.add(ifname)
                elif m := _ADDRESS.match(line):
                    if_addr.setdefault(ifname, []).append(m.group(1))
            elif top.startswith("router ospf6"):
                if m := _OSPF6_IF_AREA.match(line):
                    ospf6_enabled.add(m.group(1))
            elif top.startswith("router ospf"):
                if m := _OSPF_NETWORK.match(line):
                    ospf_networks.append(m.group(1))
            elif top == "bfd" or top.startswith("bfd"):
                if m := _BFD_MULT.match(line):
                    bfd_mult, bfd_src = max(bfd_mult, int(m.group(1))), line
                elif m := _BFD_RX.match(line):
                    bfd_rx, bfd_src = max(bfd_rx, int(m.group(1))), line
        if "bgpd" in node.daemons:
            hold_default = bgp_global or (default_hold, default_src)
            per_node[name] = {p: peers.get(p, hold_default) for p in declared}
        if "ospfd" in node.daemons:
            for ifname, addrs in if_addr.items():
                if ifname == "lo" or not _faces_router(topology, name, ifname):
                    continue
                covered = ifname in ospf_enabled or any(_in_any(a, ospf_networks) for a in addrs)
                if covered:
                    dead, src = ospf_ifs.get(ifname, (OSPF_DEAD_DEFAULT_S, "FRR default dead-interval"))
                    timers.append(_Timer("ospf_dead", name, ifname, dead, src))
        if "ospf6d" in node.daemons:
            for ifname in sorted(ospf6_enabled):
                if ifname == "lo" or not _faces_router(topology, name, ifname):
                    continue
                dead, src = ospf6_ifs.get(ifname, (OSPF_DEAD_DEFAULT_S, "FRR default dead-interval"))
                timers.append(_Timer("ospf6_dead", name, ifname, dead, src))
        if "bfdd" in node.daemons and re.search(r"^\s*(bfd\b|.*\bbfd$|\s*neighbor\s+\S+\s+bfd)", text, re.M):
            timers.append(_Timer("bfd_detect", name, "bfd", bfd_mult * bfd_rx / 1000.0, bfd_src))
    # BGP: the hold time a session runs with is the smaller of the two ends' (RFC 4271 4.2).
    for name, peers in per_node.items():
        for peer, (hold, src) in sorted(peers.items()):
            other = owners.get(peer)
            if other and other in per_node:
                mine = [v for p, v in per_node[other].items() if owners.get(p) == name]
                if mine and mine[0][0] < hold:
                    hold, src = mine[0][0], f"{other}: {mine[0][1]}"
            timers.append(_Timer("bgp_hold", name, peer, hold, src))
    return timers


def _faces_router(topology: Topology, node: str, iface: str) -> bool:
    for link in topology.links:
        for ep, other in ((link.a, link.b), (link.b, link.a)):
            if ep.node == node and ep.iface == iface:
                return topology.nodes[other.node].role in ("frr", "bridge") if other.node in topology.nodes else False
    return False


def _in_any(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_interface(address).ip
    except ValueError:
        return False
    for n in networks:
        try:
            if ip in ipaddress.ip_network(n, strict=False):
                return True
        except ValueError:
            continue
    return False


def change_touches(change: dict[str, Any]) -> dict[str, list[str]]:
    """Which protocols' timers a change can set running: {"link": [...], "bgp": [...], "ospf": [...], ...}."""
    touches: dict[str, list[str]] = {}
    for device, text in sorted(change["devices"].items()):
        for ctx, line in config_statements(text):
            top = ctx[0] if ctx else ""
            where = f"{device}: {line}"
            if top.startswith("interface") and _LINK.match(line):
                touches.setdefault("link", []).append(f"{device}:{top.split()[1]} {line}")
            if _TIMER.search(line):
                proto = ("bgp" if top.startswith("router bgp") else "bfd" if top.startswith("bfd")
                         else "ospf6" if "ospf6" in line or top.startswith("router ospf6")
                         else "ospf" if "ospf" in line or top.startswith("router ospf") else "bgp")
                touches.setdefault(proto, []).append(where)
            elif top.startswith("router bgp") and _BGP_SESSION.match(line):
                touches.setdefault("bgp", []).append(where)
            elif line.startswith(("no router bgp", "no router ospf")):
                touches.setdefault("ospf" if "ospf" in line else "bgp", []).append(where)
            elif _OSPF_SESSION.match(line) and ("ospf" in top or "ospf" in line or top.startswith("interface")):
                touches.setdefault("ospf6" if "ospf6" in (top + line) else "ospf", []).append(where)
            elif (top.startswith("bfd") or "bfd" in line) and _BFD_SESSION.match(line):
                touches.setdefault("bfd", []).append(where)
    return touches


_PROTO_TIMERS = {"bgp": ("bgp_hold", "bfd_detect"), "ospf": ("ospf_dead", "bfd_detect"),
                 "ospf6": ("ospf6_dead", "bfd_detect"), "bfd": ("bfd_detect",)}


def settle_window(topology: Topology, change: dict[str, Any], converge_timeout: float) -> SettleWindow:
    """The settle window after applying `change` to a twin of `topology`.

    0 s when the change touches no link, session or timer. Otherwise the longest relevant
    protocol timer of the lab (a link change: every protocol's; a BGP line: BGP hold and BFD;
    an OSPF line: the dead interval and BFD), bounded by `converge_timeout`.
    """
    touches = change_touches(change)
    if not touches:
        return SettleWindow(0.0)
    kinds: set[str] = set()
    if "link" in touches:
        kinds |= {"bgp_hold", "ospf_dead", "ospf6_dead", "bfd_detect"}
    for proto in ("bgp", "ospf", "ospf6", "bfd"):
        if proto in touches:
            kinds |= set(_PROTO_TIMERS[proto])
    why = [f"{k}: {v[0]}" + (f" (+{len(v) - 1} more)" if len(v) > 1 else "") for k, v in sorted(touches.items())]
    candidates = [t for t in _lab_timers(topology) if t.kind in kinds]
    if not candidates:
        return SettleWindow(0.0, touches=why)
    # Longest first; ties broken by name so the same lab and change always name the same timer.
    top = max(candidates, key=lambda t: (t.seconds, t.kind, t.node, t.subject))
    bounded = top.seconds > converge_timeout
    return SettleWindow(seconds=min(top.seconds, float(converge_timeout)), timer=top.kind, node=top.node,
                        subject=top.subject, source=top.source, timer_seconds=top.seconds, bounded=bounded,
                        touches=why)
