"""A small model of an FRR integrated config: just what the semantic checks and the
simulator need (interfaces and addresses, BGP neighbours and networks, OSPF areas, static
routes, route-maps, prefix/community/as-path lists and where they are referenced).

Not a full FRR parser: FRR's own parser (`vtysh --dryrun`) judges syntax. This model reads
statements in order, follows the configuration context the way vtysh does (entering a
block, `exit`, and top-level commands that pop back to the top), and applies `no …` forms
for the objects it tracks. Every statement remembers where it came from (baseline or the
change, and the change's line number) so findings can point at the operator's line.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache

Origin = tuple[str, int | None]  # ("baseline" | "change", line number in the change or None)


@dataclass
class Ref:
    kind: str  # route-map | prefix-list | community-list | as-path
    name: str
    origin: Origin
    line: str


@dataclass
class Neighbor:
    peer: str
    remote_as: str | None
    origin: Origin
    line: str
    peer_group: str | None = None
    shutdown: bool = False


@dataclass
class FrrConfig:
    hostname: str | None = None
    # interface -> {address/len: origin}
    addresses: dict[str, dict[str, Origin]] = field(default_factory=dict)
    interfaces: dict[str, Origin] = field(default_factory=dict)
    iface_ospf_area: dict[str, tuple[str, Origin]] = field(default_factory=dict)
    ospf_networks: dict[str, tuple[str, Origin]] = field(default_factory=dict)  # prefix -> (area, origin)
    ospf_present: bool = False
    bgp_asn: str | None = None
    bgp_origin: Origin | None = None
    neighbors: dict[str, Neighbor] = field(default_factory=dict)
    bgp_networks: dict[str, Origin] = field(default_factory=dict)  # prefix -> origin
    static_routes: dict[str, Origin] = field(default_factory=dict)  # "prefix nexthop" -> origin
    defined: dict[tuple[str, str], Origin] = field(default_factory=dict)  # (kind, name) -> origin
    removed: dict[tuple[str, str], Origin] = field(default_factory=dict)  # objects deleted by `no`
    refs: list[Ref] = field(default_factory=list)
    # route-map name -> list of (prefix-list names matched) for the simulator's policy
    route_map_prefix_lists: dict[str, list[str]] = field(default_factory=dict)
    route_map_action: dict[str, str] = field(default_factory=dict)
    prefix_lists: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # name -> (action, prefix, le/ge)

    def neighbor_remote_as(self, peer: str) -> str | None:
        nb = self.neighbors.get(peer)
        if nb is None:
            return None
        if nb.remote_as is None and nb.peer_group and nb.peer_group in self.neighbors:
            return self.neighbors[nb.peer_group].remote_as
        return nb.remote_as


_RE_REF = [
    (re.compile(r"^neighbor\s+\S+\s+route-map\s+(\S+)\s+(in|out)$"), "route-map"),
    (re.compile(r"^neighbor\s+\S+\s+(?:default-originate|unsuppress-map|attribute-unchanged)\b.*"
                r"route-map\s+(\S+)"), "route-map"),
    (re.compile(r"^redistribute\s+.*route-map\s+(\S+)"), "route-map"),
    (re.compile(r"^network\s+\S+.*route-map\s+(\S+)"), "route-map"),
    (re.compile(r"^table-map\s+(\S+)"), "route-map"),
    (re.compile(r"^default-information\s+originate.*route-map\s+(\S+)"), "route-map"),
    (re.compile(r"^neighbor\s+\S+\s+prefix-list\s+(\S+)\s+(in|out)$"), "prefix-list"),
    (re.compile(r"^neighbor\s+\S+\s+filter-list\s+(\S+)\s+(in|out)$"), "as-path"),
    (re.compile(r"^match\s+ipv?6?\s+address\s+prefix-list\s+(\S+)$"), "prefix-list"),
    (re.compile(r"^match\s+ip\s+next-hop\s+prefix-list\s+(\S+)$"), "prefix-list"),
    (re.compile(r"^match\s+(?:large-|ext)?community\s+(\S+)"), "community-list"),
    (re.compile(r"^match\s+as-path\s+(\S+)$"), "as-path"),
    (re.compile(r"^call\s+(\S+)$"), "route-map"),
]
_RE_ROUTEMAP = re.compile(r"^route-map\s+(\S+)\s+(permit|deny)\s+(\d+)$")
_RE_PL = re.compile(r"^ipv?6?\s*prefix-list\s+(\S+)\s+(?:seq\s+\d+\s+)?(permit|deny)\s+(\S+)(.*)$")
_RE_PL_NAME = re.compile(r"^ip(?:v6)?\s+prefix-list\s+(\S+)")
_RE_CL = re.compile(r"^bgp\s+(?:large-|ext)?community-list\s+(?:standard\s+|expanded\s+)?(\S+)\s")
_RE_ASP = re.compile(r"^bgp\s+as-path\s+access-list\s+(\S+)\s")
_TOP_ONLY = re.compile(
    r"^(ip|ipv6)\s+(route|prefix-list|forwarding|nht|protocol)\s|^bgp\s+(community-list|large-community-list|"
    r"extcommunity-list|as-path)\s|^(ipv6\s+)?access-list\s|^hostname\s|^frr\s|^log\s|^debug\s|^line\s"
)


def parse(statements: list[tuple[Origin, str]], model: FrrConfig | None = None) -> FrrConfig:
    """Apply statements (origin, text) in order to a model (a new one by default)."""
    cfg = model or FrrConfig()
    ctx: list[tuple[str, str]] = []  # stack of (kind, arg)
    for origin, raw in statements:
        line = raw.strip()
        if not line or line.startswith(("!", "#")):
            continue
        line = re.sub(r"\s+", " ", line)
        neg = line.startswith("no ")
        body = line[3:] if neg else line
        if line in ("exit", "end", "quit"):
            if ctx:
                ctx.pop()
            continue
        if line.startswith("exit-"):
            if ctx and ctx[-1][0] in ("af", "vrf"):
                ctx.pop()
            continue
        if _TOP_ONLY.match(body):
            ctx = []
        m = re.match(r"^router (bgp|ospf|ospf6)\b\s*(\S*)(.*)$", body)
        if m:
            ctx = []
            proto, arg, rest = m.group(1), m.group(2), m.group(3)
            if "vrf" in rest:  # VRF instances are out of scope for these checks
                if not neg:
                    ctx = [("other", body)]
                continue
            if proto == "bgp":
                if neg:
                    cfg.bgp_asn, cfg.neighbors, cfg.bgp_networks = None, {}, {}
                    continue
                cfg.bgp_asn = arg or cfg.bgp_asn
                cfg.bgp_origin = cfg.bgp_origin or origin
                ctx = [("bgp", arg)]
            elif proto == "ospf":
                if neg:
                    cfg.ospf_present, cfg.ospf_networks = False, {}
                    continue
                cfg.ospf_present = True
                ctx = [("ospf", arg)]
            else:
                ctx = [("ospf6", arg)] if not neg else []
            continue
        m = re.match(r"^interface (\S+)", body)
        if m:
            ctx = []
            if neg:
                cfg.interfaces.pop(m.group(1), None)
                cfg.addresses.pop(m.group(1), None)
                continue
            cfg.interfaces.setdefault(m.group(1), origin)
            ctx = [("interface", m.group(1))]
            continue
        m = _RE_ROUTEMAP.match(body) or re.match(r"^route-map (\S+)$", body)
        if m:
            ctx = []
            name = m.group(1)
            if neg:
                cfg.defined.pop(("route-map", name), None)
                cfg.removed[("route-map", name)] = origin
                cfg.route_map_prefix_lists.pop(name, None)
                continue
            cfg.defined[("route-map", name)] = origin
            cfg.route_map_action[name] = m.group(2) if m.lastindex and m.lastindex >= 2 else "permit"
            ctx = [("route-map", name)]
            continue
        if body.startswith("address-family ") and ctx and ctx[0][0] == "bgp":
            ctx = ctx[:1] + [("af", body[len("address-family "):])]
            continue
        if re.match(r"^(ip|ipv6) prefix-list ", body):
            name_m = _RE_PL_NAME.match(body)
            if name_m:
                name = name_m.group(1)
                if neg and re.match(r"^ipv?6? ?prefix-list \S+$", body):
                    cfg.defined.pop(("prefix-list", name), None)
                    cfg.prefix_lists.pop(name, None)
                    cfg.removed[("prefix-list", name)] = origin
                elif not neg:
                    cfg.defined[("prefix-list", name)] = origin
                    pm = _RE_PL.match(body)
                    if pm:
                        cfg.prefix_lists.setdefault(name, []).append((pm.group(2), pm.group(3), pm.group(4).strip()))
            continue
        for regex, kind in ((_RE_CL, "community-list"), (_RE_ASP, "as-path")):
            mm = regex.match(body + " ")
            if mm:
                if neg:
                    cfg.defined.pop((kind, mm.group(1)), None)
                    cfg.removed[(kind, mm.group(1))] = origin
                else:
                    cfg.defined[(kind, mm.group(1))] = origin
                break
        else:
            mm = None
        if mm:
            continue
        m = re.match(r"^hostname (\S+)$", body)
        if m:
            cfg.hostname = None if neg else m.group(1)
            continue
        m = re.match(r"^ip route (\S+) (\S+)", body)
        if m:
            key = f"{m.group(1)} {m.group(2)}"
            if neg:
                cfg.static_routes.pop(key, None)
            else:
                cfg.static_routes[key] = origin
            continue
        kind = ctx[0][0] if ctx else None
        if not neg:
            for regex, ref_kind in _RE_REF:
                rm = regex.match(body)
                if rm and (ref_kind != "route-map" or kind in ("bgp", "route-map", "ospf", "ospf6") or
                           body.startswith("match")):
                    cfg.refs.append(Ref(ref_kind, rm.group(1), origin, raw.strip()))
                    if kind == "route-map" and ref_kind == "prefix-list":
                        cfg.route_map_prefix_lists.setdefault(ctx[0][1], []).append(rm.group(1))
        if kind == "interface":
            iface = ctx[0][1]
            m = re.match(r"^ip address (\S+)", body)
            if m:
                if neg:
                    cfg.addresses.get(iface, {}).pop(m.group(1), None)
                else:
                    cfg.addresses.setdefault(iface, {})[m.group(1)] = origin
                continue
            m = re.match(r"^ip ospf area (\S+)", body)
            if m:
                if neg:
                    cfg.iface_ospf_area.pop(iface, None)
                else:
                    cfg.iface_ospf_area[iface] = (m.group(1), origin)
                continue
        elif kind == "ospf":
            m = re.match(r"^network (\S+) area (\S+)", body)
            if m:
                if neg:
                    cfg.ospf_networks.pop(m.group(1), None)
                else:
                    cfg.ospf_networks[m.group(1)] = (m.group(2), origin)
                continue
        elif kind == "bgp":
            m = re.match(r"^neighbor (\S+) (.*)$", body)
            if m:
                _neighbor_stmt(cfg, m.group(1), m.group(2), neg, origin, raw.strip())
                continue
            m = re.match(r"^network (\S+)", body)
            if m:
                prefix = _norm_prefix(m.group(1))
                if neg:
                    cfg.bgp_networks.pop(prefix, None)
                else:
                    cfg.bgp_networks[prefix] = origin
                continue
    return cfg


def _neighbor_stmt(cfg: FrrConfig, peer: str, rest: str, neg: bool, origin: Origin, raw: str) -> None:
    words = rest.split()
    if neg and (not words or words[0] in ("remote-as",) or rest.startswith("interface")):
        cfg.neighbors.pop(peer, None)
        return
    if not words:
        return
    if words[0] == "remote-as" and len(words) > 1 and not neg:
        nb = cfg.neighbors.get(peer)
        if nb is None:
            cfg.neighbors[peer] = Neighbor(peer, words[1], origin, raw)
        else:
            nb.remote_as, nb.origin, nb.line = words[1], origin, raw
    elif words[0] == "interface" and "remote-as" in words:
        cfg.neighbors[peer] = Neighbor(peer, words[words.index("remote-as") + 1], origin, raw)
    elif words[0] == "peer-group":
        if len(words) == 1:
            if neg:
                cfg.neighbors.pop(peer, None)
            else:
                cfg.neighbors.setdefault(peer, Neighbor(peer, None, origin, raw))
        else:
            nb = cfg.neighbors.setdefault(peer, Neighbor(peer, None, origin, raw))
            nb.peer_group = None if neg else words[1]
    elif words[0] == "shutdown" and peer in cfg.neighbors:
        cfg.neighbors[peer].shutdown = not neg


def _norm_prefix(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return text


def statements(text: str, origin_kind: str, numbered: bool) -> list[tuple[Origin, str]]:
    """Split config text into (origin, line) statements; change lines keep their number."""
    return [((origin_kind, i if numbered else None), line) for i, line in enumerate(text.split("\n"), start=1)]


@lru_cache(maxsize=1024)
def baseline_model(baseline: str) -> FrrConfig:
    """The model of an unchanged config, cached: callers must treat it as read-only."""
    return parse(statements(baseline, "baseline", False))


@lru_cache(maxsize=4096)
def config_model(baseline: str, change: str | None = None) -> FrrConfig:
    """The model of a device's config after the change is entered on top of its baseline.

    Cached (the stress test parses the same texts thousands of times): treat the returned
    model as read-only.

    The change is parsed with a fresh context, exactly as the twin enters it in a new
    `configure terminal` session.
    """
    model = parse(statements(baseline, "baseline", False))  # a fresh model: change lines mutate it
    if change:
        model = parse(statements(change, "change", True), model)
    return model
