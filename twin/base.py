"""The twin's contract: plain data in, plain data out, no Django.

Snapshot shape (docs/result-format.md has the whole result document)::

    {"nodes": {"r1": {
        "routes": {"10.0.0.2/32": {"protocol": "bgp", "distance": 20, "metric": 0,
                                   "nexthops": ["10.1.0.1@eth1"]}},      # selected only, v4+v6
        "bgp": {"10.1.0.1": {"state": "Established", "remote_as": 65002, "local_as": 65001,
                             "pfx_rcd": 3, "pfx_snt": 3}},
        "bgp_best": {"10.0.0.2/32": {"as_path": "65002", "nexthop": "10.1.0.1",
                                     "origin": "IGP", "peer": "10.1.0.1"}},
        "ospf": {"10.0.0.2@eth1": {"state": "Full"}},     # DR role dropped on purpose
        "ospf6": {"10.0.0.2@eth1": {"state": "Full"}},
        "interfaces": {"eth1": {"admin": "up", "oper": "up", "addresses": ["10.1.0.0/31"]}},
        "bfd": {"10.1.0.1|eth1": {"status": "up"}}}},
     "reachability": {"pairs": {"r1->r2:10.0.0.2": true}, "sampled": false, "seed": null}}

A `Backend` spawns a `Twin` from a parsed `Topology`. The pipeline only speaks this
protocol, so the real namespace twin (`netns`), the seeded `simulator` and a remote
agent (`http`) are interchangeable. Snapshots are plain JSON-able dicts, normalised so
that two snapshots of an unchanged network compare equal with `==`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Every namespace, run directory and process AEGIS creates carries this prefix, so the
# reaper can find leftovers of a crashed run and never touch anything else.
NAMESPACE_PREFIX = "aegis-"

# Progress callback: (step, status, message, data). Steps are short names such as
# "spawn", "converge", "snapshot"; status is "started" | "ok" | "failed" | "info".
Progress = Callable[[str, str, str, dict[str, Any]], None]


def no_progress(step: str, status: str, message: str, data: dict[str, Any]) -> None:
    """A progress sink that drops everything."""


class TopologyError(ValueError):
    """A lab that cannot be loaded. The message names the file, line and field to fix."""


class TwinError(RuntimeError):
    """The twin could not do what was asked (spawn failed, a daemon died, ...)."""


@dataclass(frozen=True)
class Endpoint:
    node: str
    iface: str
    mac: str | None = None
    ipv4: str | None = None  # only used by kinds that apply addresses; FRR nodes use frr.conf
    ipv6: str | None = None


@dataclass(frozen=True)
class Link:
    a: Endpoint
    b: Endpoint
    mtu: int | None = None


@dataclass(frozen=True)
class Tunnel:
    """One end of a link whose other end runs on another twin host (twin/split.py).

    Realised as a VXLAN device over the hosts' underlay, named `iface` inside `node`, as
    containerlab and netlab's multi-host links are. Both ends share `vni`; `remote` is the other
    host's underlay address, `local` this host's (None: the kernel picks by route).
    """

    node: str
    iface: str
    vni: int
    remote: str
    local: str | None = None
    mac: str | None = None
    mtu: int = 1450  # 1500 less VXLAN's 50 bytes over an IPv4 underlay of MTU 1500
    dstport: int = 4789


@dataclass
class Node:
    name: str
    # "frr": a router (binds frr.conf); "host": a plain Linux host (exec only);
    # "bridge": a LAN segment, realised as a Linux bridge in the lab's switch namespace.
    role: str
    frr_conf: str | None = None  # integrated config text, as bound to /etc/frr/frr.conf
    daemons: list[str] = field(default_factory=list)  # zebra and staticd always included
    exec: list[str] = field(default_factory=list)  # only `ip ...` / `sysctl ...` survive loading
    image: str | None = None  # recorded to flag FRR version skew, never pulled
    labels: dict[str, str] = field(default_factory=dict)  # e.g. aegis.criticality: high
    config_path: str | None = None  # frr.conf path relative to the lab folder


@dataclass
class Topology:
    name: str
    nodes: dict[str, Node]
    links: list[Link]
    source: str  # path of the .clab.yml file
    warnings: list[str] = field(default_factory=list)

    def routers(self) -> list[str]:
        return sorted(n for n, node in self.nodes.items() if node.role == "frr")


@dataclass
class ConvergeResult:
    converged: bool
    seconds: float
    # When not converged: what was still moving, e.g. ["r1: bgp 10.0.0.2 Active"].
    still_moving: list[str] = field(default_factory=list)
    # When converged: configured sessions/adjacencies that settled in a down state (a peer
    # that never answers, an admin shutdown), e.g. ["r2: bgp 192.168.2.1 Active"].
    down: list[str] = field(default_factory=list)
    # The finished reads run inside the settle window (`converge(alongside=fn)`, netns twin) when
    # nothing changed from their start to the sweep that decided: a done Future (`.result()`
    # returns fn's value or raises its error); None when none were run or none held. Never on
    # the wire: a result the caller could also have read after the window.
    alongside: Any = field(default=None, repr=False, compare=False)
    # With held reads: every router's tables (`snapshot(reachability=False)["nodes"]`) as read by
    # the sweep that decided, in the same vtysh process as its protocol state; the moment the
    # window was declared over. None otherwise. Never on the wire, like `alongside`.
    tables: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass
class RejectedLine:
    node: str
    line: str
    message: str  # FRR's own words
    line_no: int | None = None


@dataclass
class ApplyResult:
    node: str
    applied: list[str]
    rejected: list[RejectedLine]
    # Everything vtysh and the daemons printed while the lines went in: a daemon can refuse a
    # line in words while vtysh still exits 0 ("% Refusing to remove a non-existent route").
    output: str = ""
    exit_status: int | None = None


@dataclass
class ReloadResult:
    """What `frr-reload.py` did (or would do, with test_only) to reach a target config."""

    node: str
    lines_to_delete: list[str]
    lines_to_add: list[str]
    applied: bool
    output: str = ""


class Twin(Protocol):
    """A running lab. Always torn down by the caller in `finally`."""

    topology: Topology
    # Config lines FRR refused while loading the lab's own configs.
    load_errors: list[RejectedLine]
    # e.g. {"backend": "netns", "tier": "real", "frr_version": "8.4.4", "nodes": 3, ...}
    facts: dict[str, Any]

    def converge(self, timeout: float, stable_for: float = 3.0) -> ConvergeResult: ...

    def snapshot(self, reachability: bool = True) -> dict[str, Any]: ...

    def apply(self, node: str, lines: str) -> ApplyResult: ...

    def reach(self, src: str, address: str, count: int = 1) -> bool:
        """Ping `address` from inside node `src` (data plane, not the RIB)."""
        ...

    def fib(self) -> dict[str, Any]:
        """Every router's kernel forwarding table and addresses, read now (twin/fib.py shape):
        {"nodes": {router: {"routes": [...], "addresses": [...], "skipped_tables": [...]}},
         "links": {"r1:eth1": ["r2:eth1"], ...}}."""
        ...

    def probe(self, src: str, address: str) -> dict[str, Any]:
        """One real packet from `src` to `address` (ping, sourced from src's loopback when it has
        one): {"replied": bool, "ttl_exceeded": bool, "unreachable": bool, "output": str}."""
        ...

    def set_link(self, node: str, iface: str, up: bool) -> None:
        """Take an interface of `node` down or up (a failure scenario); addresses are kept."""
        ...

    def running_config(self, node: str) -> str: ...

    def reload_config(self, node: str, config: str, test_only: bool = False) -> ReloadResult: ...

    def teardown(self) -> None: ...


class Backend(Protocol):
    name: str  # "netns" | "simulator" | "http"
    tier: str  # "real" | "simulated"

    def spawn(self, topology: Topology, run_id: str, progress: Progress = no_progress) -> Twin: ...
