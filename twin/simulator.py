"""The seeded simulator backend: the `Backend` protocol with no FRR and no privileges.

What it is for: the stress test of the pipeline's own invariants (tens of thousands of
runs with injected faults), logic tests, and trying the UI on a laptop. What it is not:
a routing implementation. It models just enough of an FRR network from the lab's configs
to give plausible, deterministic snapshots:

- interfaces and connected routes from `ip address` lines;
- static routes (`ip route P Null0` and friends, distance 1);
- eBGP/iBGP sessions: Established when both ends point at each other's addresses with the
  right `remote-as` and neither is shut down; otherwise Active;
- BGP `network` origination (only when the prefix is in the RIB, like FRR's import check)
  and path-vector propagation (shortest AS path, lowest peer address on ties, AS-path loop
  check), with inbound route-maps that match prefix-lists; an undefined inbound route-map
  denies everything, as in FRR;
- reachability between loopbacks: a route exists on the source and is not a discard route.

No OSPF, BFD, IPv6 or timers. Every result is marked `tier: simulated` and is never
promotable. Faults for the stress test are injected with `faults` (see `FAULT_KINDS`).
"""

from __future__ import annotations

import ipaddress
import json
import random
from functools import lru_cache
from typing import Any

from twin.base import (
    ApplyResult,
    ConvergeResult,
    Progress,
    RejectedLine,
    ReloadResult,
    Topology,
    TwinError,
    no_progress,
)
from twin.fib import fib_links
from twin.frrconf import FrrConfig, config_model

# faults = {"spawn_failure": True, "converge_timeout": "baseline"|"change"|"rollback",
#           "daemon_crash": "<node>", "rejected_apply": True, "exception": "<method name>"}
FAULT_KINDS = ("spawn_failure", "converge_timeout", "daemon_crash", "rejected_apply", "exception")
EXCEPTION_METHODS = ("converge", "snapshot", "apply", "reach", "running_config", "reload_config", "teardown")
CONVERGE_PHASES = ("baseline", "change", "rollback")

# First words the simulator accepts in configuration mode; anything else is "rejected" the
# way vtysh rejects an unknown command. A stand-in for FRR's grammar, not a copy of it.
KNOWN_WORDS = frozenset({
    "router", "neighbor", "network", "ip", "ipv6", "interface", "route-map", "match", "set", "address-family",
    "exit-address-family", "exit", "bgp", "description", "redistribute", "hostname", "no", "log", "frr",
    "timers", "maximum-paths", "aggregate-address", "distance", "shutdown", "call", "on-match", "continue",
    "ospf", "area", "passive-interface", "vrf", "debug", "access-list", "mtu", "link-detect", "bfd",
})


class SimulatorBackend:
    """Seeded backend; keeps every twin it spawned so a caller can audit teardowns."""

    name = "simulator"
    tier = "simulated"

    def __init__(self, seed: int = 0, faults: dict[str, Any] | None = None) -> None:
        unknown = set(faults or {}) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown simulator fault(s): {', '.join(sorted(unknown))}")
        self.seed = seed
        self.faults = dict(faults or {})
        self.spawn_attempts = 0
        self.twins: list[SimulatedTwin] = []

    def spawn(self, topology: Topology, run_id: str, progress: Progress = no_progress) -> SimulatedTwin:
        self.spawn_attempts += 1
        if self.faults.get("spawn_failure"):
            raise TwinError("simulated fault: spawn failed (namespace could not be created)")
        twin = SimulatedTwin(topology, run_id, seed=self.seed, faults=self.faults)
        self.twins.append(twin)
        progress("spawn", "info", f"simulated twin of {len(topology.routers())} routers", {"run_id": run_id})
        return twin


class SimulatedTwin:
    def __init__(self, topology: Topology, run_id: str, *, seed: int, faults: dict[str, Any]) -> None:
        self.topology = topology
        self.run_id = run_id
        self.faults = faults
        self.load_errors: list[RejectedLine] = []
        self.rng = random.Random(f"{seed}:{topology.name}")
        self.configs: dict[str, str] = {n: topology.nodes[n].frr_conf or "" for n in topology.routers()}
        self.crashed: set[str] = set()
        self.teardown_calls = 0
        self.converge_calls = 0
        # Which settling this is follows what happened, not how often converge was called:
        # the pipeline may settle the baseline more than once (second looks).
        self.phase = "baseline"
        self.fired: list[str] = []
        self._ifaces: dict[str, set[str]] = {n: {"lo"} for n in topology.nodes}
        for link in topology.links:
            for ep in (link.a, link.b):
                self._ifaces.setdefault(ep.node, {"lo"}).add(ep.iface)
        self.facts: dict[str, Any] = {
            "backend": "simulator", "tier": "simulated", "frr_version": None, "seed": seed,
            "nodes": len(topology.nodes), "links": len(topology.links), "run_id": run_id,
        }

    def _iface_key(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((n, tuple(sorted(i))) for n, i in sorted(self._ifaces.items()))

    # -- fault plumbing -------------------------------------------------------------------
    def _maybe_raise(self, method: str) -> None:
        if self.faults.get("exception") == method:
            self.fired.append(f"exception:{method}")
            raise RuntimeError(f"simulated fault: exception in {method}")

    # -- protocol -------------------------------------------------------------------------
    def converge(self, timeout: float, stable_for: float = 3.0) -> ConvergeResult:
        self._maybe_raise("converge")
        phase = self.phase
        self.converge_calls += 1
        if self.faults.get("converge_timeout") == phase:
            self.fired.append(f"converge_timeout:{phase}")
            return ConvergeResult(False, float(timeout), [f"{self.topology.routers()[0]}: bgp sessions Active "
                                                          f"(simulated fault)"])
        # Plausible, seeded figures: about a second plus a little per node.
        seconds = round(1.0 + 0.05 * len(self.configs) + self.rng.random() * 0.5, 2)
        return ConvergeResult(True, seconds, [])

    def snapshot(self, reachability: bool = True) -> dict[str, Any]:
        self._maybe_raise("snapshot")
        return json.loads(self._simulated_json(reachability))

    def _simulated_json(self, reachability: bool) -> str:
        # The same configs always give the same snapshot; the stress test repeats the same
        # baseline thousands of times, so results are cached as JSON (a fresh copy per call).
        key = (self.topology.source, tuple(sorted(self.configs.items())), frozenset(self.crashed), reachability,
               self._iface_key())
        cached = _SNAPSHOT_CACHE.get(key)
        if cached is None:
            cached = json.dumps(_simulate(self.topology, self.configs, frozenset(self.crashed), self._ifaces,
                                          reachability))
            if len(_SNAPSHOT_CACHE) > 4096:
                _SNAPSHOT_CACHE.clear()
            _SNAPSHOT_CACHE[key] = cached
        return cached

    def apply(self, node: str, lines: str) -> ApplyResult:
        self.phase = "change"
        self._maybe_raise("apply")
        if node not in self.configs:
            raise TwinError(f"no router {node} in this twin")
        applied, rejected = [], []
        running_as = _model(self.configs[node]).bgp_asn
        refused_block = False  # after a refused `router bgp`, its indented lines fail too (as in vtysh)
        for i, line in enumerate(lines.split("\n"), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("!", "#")):
                continue
            if not line[:1].isspace():
                refused_block = False
            first = stripped.split()[0].lower()
            words = stripped.split()
            if words[:2] == ["router", "bgp"] and len(words) == 3 and running_as and words[2] != running_as:
                rejected.append(RejectedLine(node, stripped, f"% BGP is already running; AS is {running_as}", i))
                refused_block = True
            elif refused_block and line[:1].isspace():
                rejected.append(RejectedLine(node, stripped, f"% Unknown command: {stripped}", i))
            elif self.faults.get("rejected_apply") and not rejected:
                self.fired.append("rejected_apply")
                rejected.append(RejectedLine(node, stripped, "% Unknown command (simulated fault)", i))
            elif first not in KNOWN_WORDS:
                rejected.append(RejectedLine(node, stripped, f"% Unknown command: {stripped}", i))
            else:
                applied.append(line)
        if applied:
            self.configs[node] = self.configs[node].rstrip("\n") + "\n" + "\n".join(applied) + "\n"
        if self.faults.get("daemon_crash") == node:
            self.fired.append(f"daemon_crash:{node}")
            self.crashed.add(node)
        return ApplyResult(node, [ln.strip() for ln in applied], rejected)

    def reach(self, src: str, address: str, count: int = 1) -> bool:
        self._maybe_raise("reach")
        key = (self.topology.source, tuple(sorted(self.configs.items())), frozenset(self.crashed), self._iface_key())
        routes = _ROUTES_CACHE.get(key)
        if routes is None:
            snap = json.loads(self._simulated_json(False))
            routes = {n: v.get("routes", {}) for n, v in snap["nodes"].items()}
            if len(_ROUTES_CACHE) > 4096:
                _ROUTES_CACHE.clear()
            _ROUTES_CACHE[key] = routes  # read-only: reach() only looks
        return _route_reaches(routes.get(src, {}), address)

    def fib(self) -> dict[str, Any]:
        """The simulated routes written as a kernel FIB would hold them (twin/fib.py shape)."""
        self._maybe_raise("fib")
        snap = json.loads(self._simulated_json(False))
        nodes = {}
        for n, v in snap["nodes"].items():
            routes: list[dict[str, Any]] = []
            addresses: list[dict[str, str]] = []
            for iface, info in v["interfaces"].items():
                if info["oper"] != "up":
                    continue
                for a in info["addresses"]:
                    ip = ipaddress.ip_interface(a)
                    addresses.append({"dev": iface, "address": a})
                    host = f"{ip.ip}/{ip.max_prefixlen}"
                    routes.append({"dst": host, "table": "local", "type": "local", "nexthops": [{"dev": iface}]})
            for prefix, r in v["routes"].items():
                hops: list[dict[str, str]] = []
                rtype = "unicast"
                for h in r["nexthops"]:
                    via, _, dev = str(h).partition("@")
                    if via.lower() in ("null0", "blackhole"):
                        rtype = "blackhole"
                    elif r["protocol"] == "connected":
                        hops.append({"dev": via})
                    else:
                        dev = dev or next((i for i, info in v["interfaces"].items() for a in info["addresses"]
                                           if _same_subnet(a, via)), "")
                        hops.append({"via": via, "dev": dev} if dev else {"via": via})
                routes.append({"dst": prefix, "table": "main", "type": rtype,
                               "nexthops": [] if rtype == "blackhole" else hops})
            nodes[n] = {"routes": sorted(routes, key=lambda x: (x["table"], x["dst"], x["type"])),
                        "addresses": sorted(addresses, key=lambda a: (a["dev"], a["address"])),
                        "skipped_tables": []}
        return {"nodes": nodes, "links": fib_links(self.topology)}

    def probe(self, src: str, address: str) -> dict[str, Any]:
        """A simulated packet, walked hop by hop through the simulated FIBs (first next hop, TTL 64)."""
        fib = self.fib()["nodes"]
        owner = {a["address"].split("/")[0]: n for n, v in fib.items() for a in v["addresses"]}
        dst = ipaddress.ip_address(address)
        node, ttl = src, 64
        while ttl > 0:
            if owner.get(address) == node:
                return {"replied": True, "ttl_exceeded": False, "unreachable": False, "output": f"reply from {node}"}
            best = None
            for r in fib[node]["routes"]:
                net = ipaddress.ip_network(r["dst"])
                if net.version == dst.version and dst in net and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, r)
            if best is None or best[1]["type"] != "unicast" or not best[1]["nexthops"]:
                return {"replied": False, "ttl_exceeded": False, "unreachable": best is None,
                        "output": f"dropped at {node}"}
            hop = best[1]["nexthops"][0]
            nxt = owner.get(hop.get("via", address))
            if nxt is None:
                return {"replied": False, "ttl_exceeded": False, "unreachable": True, "output": f"no neighbour at {node}"}
            node, ttl = nxt, ttl - 1
        return {"replied": False, "ttl_exceeded": True, "unreachable": False, "output": "Time to live exceeded"}

    def set_link(self, node: str, iface: str, up: bool) -> None:
        """Take `node:iface` and the other end of its link down or up."""
        if iface not in self._ifaces.get(node, set()) and up is False:
            raise TwinError(f"{node} has no interface {iface!r}")
        ends = [(node, iface)]
        for link in self.topology.links:
            if (link.a.node, link.a.iface) == (node, iface):
                ends.append((link.b.node, link.b.iface))
            elif (link.b.node, link.b.iface) == (node, iface):
                ends.append((link.a.node, link.a.iface))
        for n, i in ends:
            if up:
                self._ifaces.setdefault(n, {"lo"}).add(i)
            else:
                self._ifaces.get(n, set()).discard(i)

    def running_config(self, node: str) -> str:
        self._maybe_raise("running_config")
        return self.configs[node]

    def reload_config(self, node: str, config: str, test_only: bool = False) -> ReloadResult:
        if not test_only:
            self.phase = "rollback"
        self._maybe_raise("reload_config")
        current = _config_lines(self.configs[node])
        target = _config_lines(config)
        # Same shape as frr-reload's report: deletions already negated, then additions.
        delete = [ln[3:] if ln.startswith("no ") else f"no {ln}" for ln in current if ln not in target]
        add = [ln for ln in target if ln not in current]
        if not test_only:
            self.configs[node] = config
            # A reload restarts nothing: a crashed daemon stays crashed (as watchfrr would
            # have to restart it), so a crash is never hidden by a rollback.
        return ReloadResult(node, delete, add, applied=not test_only, output="simulated frr-reload")

    def teardown(self) -> None:
        self.teardown_calls += 1
        self._maybe_raise("teardown")


def _same_subnet(interface: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_interface(interface).network
    except ValueError:
        return False


def _config_lines(text: str) -> list[str]:
    out, seen = [], set()
    for ln in text.split("\n"):
        s = ln.strip()
        if s and not s.startswith(("!", "#")) and s not in seen:
            seen.add(s)
            out.append(s)
    return out


_SNAPSHOT_CACHE: dict[Any, str] = {}
_ROUTES_CACHE: dict[Any, dict[str, Any]] = {}


@lru_cache(maxsize=4096)
def _model(text: str) -> FrrConfig:
    # Models are read-only after parsing; the cache keeps the stress test fast.
    return config_model(text)


@lru_cache(maxsize=65536)
def _net(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(prefix, strict=False)


def _route_reaches(routes: dict[str, Any], address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    best = None
    for prefix, route in routes.items():
        net = _net(prefix)
        if ip.version == net.version and ip in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, route)
    return best is not None and "Null0" not in (best[1].get("nexthops") or [])


def _prefix_allowed(cfg: FrrConfig, route_map: str | None, prefix: str) -> bool:
    if route_map is None:
        return True
    if ("route-map", route_map) not in cfg.defined:
        return False  # FRR: an undefined inbound route-map denies everything
    if cfg.route_map_action.get(route_map) == "deny":
        return False
    lists = cfg.route_map_prefix_lists.get(route_map, [])
    if not lists:
        return True
    net = ipaddress.ip_network(prefix, strict=False)
    for name in lists:
        for action, pfx, extra in cfg.prefix_lists.get(name, []):
            try:
                entry = ipaddress.ip_network(pfx, strict=False)
            except ValueError:
                continue
            words = extra.split()
            le = int(words[words.index("le") + 1]) if "le" in words else entry.prefixlen
            ge = int(words[words.index("ge") + 1]) if "ge" in words else entry.prefixlen
            if net.version == entry.version and net.subnet_of(entry) and ge <= net.prefixlen <= max(le, ge):
                return action == "permit"
    return False


def _inbound_route_map(text: str, peer: str) -> str | None:
    return _inbound_route_maps(text).get(peer)


@lru_cache(maxsize=4096)
def _inbound_route_maps(text: str) -> dict[str, str]:
    out = {}
    for line in text.split("\n"):
        words = line.split()
        if len(words) == 5 and words[0] == "neighbor" and words[2] == "route-map" and words[4] == "in":
            out[words[1]] = words[3]
    return out


def _simulate(topology: Topology, configs: dict[str, str], crashed: frozenset[str],
              ifaces: dict[str, set[str]], reachability: bool) -> dict[str, Any]:
    models = {n: _model(t) for n, t in configs.items()}
    owner: dict[str, tuple[str, str]] = {}
    for n in sorted(models):
        for iface, addrs in sorted(models[n].addresses.items()):
            if iface not in ifaces.get(n, set()):
                continue  # a down interface answers nothing (failure scenarios)
            for a in addrs:
                owner.setdefault(a.split("/")[0], (n, iface))
    nodes: dict[str, Any] = {}
    local_routes: dict[str, dict[str, Any]] = {}
    for n, cfg in models.items():
        routes: dict[str, Any] = {}
        interfaces: dict[str, Any] = {}
        for iface, addrs in sorted(cfg.addresses.items()):
            up = iface in ifaces.get(n, set())
            interfaces[iface] = {"admin": "up", "oper": "up" if up else "down", "addresses": sorted(addrs)}
            if not up:
                continue
            for a in addrs:
                net = str(ipaddress.ip_interface(a).network)
                routes[net] = {"protocol": "connected", "distance": 0, "metric": 0, "nexthops": [iface]}
        for key in sorted(cfg.static_routes):
            prefix, nexthop = key.split(" ", 1)
            try:
                prefix = str(ipaddress.ip_network(prefix, strict=False))
            except ValueError:
                continue
            routes.setdefault(prefix, {"protocol": "static", "distance": 1, "metric": 0,
                                       "nexthops": ["Null0" if nexthop.lower() in ("null0", "blackhole") else nexthop]})
        local_routes[n] = routes
        nodes[n] = {"routes": routes, "bgp": {}, "bgp_best": {}, "ospf": {}, "ospf6": {}, "interfaces": interfaces,
                    "bfd": {}}
    # Sessions.
    sessions: dict[str, list[tuple[str, str, str]]] = {n: [] for n in models}  # n -> (peer ip, peer node, iface)
    for n, cfg in models.items():
        if cfg.bgp_asn is None:
            continue
        for peer, nb in sorted(cfg.neighbors.items()):
            try:
                ipaddress.ip_address(peer)
            except ValueError:
                continue
            state = "Active"
            remote = cfg.neighbor_remote_as(peer)
            own = owner.get(peer)
            # A peer on a connected subnet needs that interface up; a multihop peer does not.
            on_link = [i for i, addrs in cfg.addresses.items() if any(_same_subnet(a, peer) for a in addrs)]
            link_up = not on_link or any(i in ifaces.get(n, set()) for i in on_link)
            if own and link_up and n not in crashed and own[0] not in crashed and not nb.shutdown:
                pnode, _ = own
                pcfg = models[pnode]
                my_ips = {a.split("/")[0] for addrs in cfg.addresses.values() for a in addrs}
                back = [p for p in pcfg.neighbors if p in my_ips]
                if pcfg.bgp_asn and back and remote == pcfg.bgp_asn and \
                        pcfg.neighbor_remote_as(back[0]) == cfg.bgp_asn and not pcfg.neighbors[back[0]].shutdown:
                    state = "Established"
                    my_iface = next((i for i, addrs in cfg.addresses.items()
                                     for a in addrs if ipaddress.ip_address(peer) in ipaddress.ip_interface(a).network), "?")
                    sessions[n].append((peer, pnode, my_iface))
            if n in crashed:
                continue  # a crashed bgpd answers nothing
            nodes[n]["bgp"][peer] = {"state": state, "remote_as": _as_int(remote), "local_as": _as_int(cfg.bgp_asn),
                                     "pfx_rcd": 0, "pfx_snt": 0}
    # Path-vector propagation: best[n][prefix] = (as_path tuple, peer ip, peer node)
    best: dict[str, dict[str, tuple[tuple[str, ...], str, str]]] = {n: {} for n in models}
    for n, cfg in models.items():
        if cfg.bgp_asn is None or n in crashed:
            continue
        for prefix in cfg.bgp_networks:
            if prefix in local_routes[n]:
                best[n][prefix] = ((), "0.0.0.0", n)
    for _ in range(len(models) + 1):
        changed = False
        for n in sorted(models):
            cfg = models[n]
            for peer, pnode, _iface in sessions[n]:
                pcfg = models[pnode]
                # Only sessions up at both ends carry routes.
                if not any(s[1] == n for s in sessions[pnode]):
                    continue
                for prefix, (path, _, _) in sorted(best[pnode].items()):
                    new_path = (pcfg.bgp_asn or "?",) + path
                    if cfg.bgp_asn in new_path:
                        continue
                    if not _prefix_allowed(cfg, _inbound_route_map(configs[n], peer), prefix):
                        continue
                    cur = best[n].get(prefix)
                    if cur is not None and cur[1] == "0.0.0.0":
                        continue
                    if cur is None or (len(new_path), peer) < (len(cur[0]), cur[1]):
                        if cur != (new_path, peer, pnode):
                            best[n][prefix] = (new_path, peer, pnode)
                            changed = True
        if not changed:
            break
    for n in models:
        iface_of = {peer: iface for peer, _, iface in sessions[n]}
        for prefix, (path, peer, _pnode) in sorted(best[n].items()):
            nodes[n]["bgp_best"][prefix] = {"as_path": " ".join(path), "nexthop": peer, "origin": "IGP",
                                            "peer": peer}
            if peer == "0.0.0.0" or prefix in nodes[n]["routes"]:
                continue
            nodes[n]["routes"][prefix] = {"protocol": "bgp", "distance": 20, "metric": 0,
                                          "nexthops": [f"{peer}@{iface_of.get(peer, '?')}"]}
            if peer in nodes[n]["bgp"]:
                nodes[n]["bgp"][peer]["pfx_rcd"] += 1
        for peer, pnode, _ in sessions[n]:
            if peer in nodes[n]["bgp"]:
                nodes[n]["bgp"][peer]["pfx_snt"] = sum(1 for p, v in best[n].items() if v[2] != pnode)
        nodes[n]["routes"] = dict(sorted(nodes[n]["routes"].items()))
    pairs: dict[str, bool] = {}
    if reachability:
        loopbacks = {n: sorted(a.split("/")[0] for a in models[n].addresses.get("lo", {})) for n in models}
        for src in sorted(models):
            for dst in sorted(models):
                if src == dst:
                    continue
                for ip in loopbacks[dst]:
                    pairs[f"{src}->{dst}:{ip}"] = src not in crashed and _route_reaches(nodes[src]["routes"], ip)
    return {"nodes": nodes, "reachability": {"pairs": pairs, "sampled": False, "seed": None}}


def _as_int(asn: str | None) -> int | str | None:
    if asn is None:
        return None
    return int(asn) if asn.isdigit() else asn
