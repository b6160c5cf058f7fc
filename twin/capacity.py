"""How much memory a twin needs, and a host's budget for twins. Django-free, no I/O but /proc/meminfo.

The per-node figure is measured, not guessed (docs/performance.md, twin benchmark): FRR's
zebra + staticd + bgpd take 22.5-26.5 MB PSS per node, growing with the routes a larger fabric
carries; ospfd, ospf6d or bfdd add a few MB more. We charge the top of the measured range plus
the extra daemons, so a budget errs on the side of admitting fewer twins.

bgpd also grows with its sessions: a fabric spine measured 33.9 / 56.4 / 92.5 MB PSS with 18 / 48
/ 96 BGP neighbours against 21.8 MB for a leaf with 2 (docs/performance.md, "Largest fabric"),
~0.75 MB per neighbour. The flat per-node figure was measured on routers with 2-4 neighbours;
each neighbour past 4 adds BGP_PEER_MB, so the node holding a large fabric's spines (and the
agent a split places them on) is charged what it holds, not the fabric's average.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from .base import Node, Topology

NODE_COST_MB = 27  # zebra + staticd + bgpd, top of the measured 22.5-26.5 MB PSS, rounded up
DAEMON_EXTRA_MB = {"ospfd": 5, "ospf6d": 4, "bfdd": 4, "isisd": 5, "ldpd": 4, "pimd": 5}
HOST_NODE_MB = 1  # a plain `host` node is a namespace and a `sleep`
TWIN_BASE_MB = 8  # the run folder, the switch namespace, vtysh and frr-reload while they run
BGP_PEER_MB = 0.75  # bgpd PSS per BGP neighbour (measured slope, 2 to 96 neighbours)
BGP_PEERS_IN_NODE_COST = 4  # NODE_COST_MB was measured on routers with up to this many neighbours
_NEIGHBOR_LINE = re.compile(r"^[ \t]*neighbor[ \t]+(\S+)[ \t]+(\S+)([ \t]+\S+)?", re.M)


def bgp_neighbors(frr_conf: str | None) -> int:
    """Distinct BGP neighbours a config names (addresses or interfaces; peer-group names are not peers)."""
    peers: set[str] = set()
    groups: set[str] = set()
    for m in _NEIGHBOR_LINE.finditer(frr_conf or ""):
        name, keyword, arg = m.group(1), m.group(2), m.group(3)
        if keyword == "peer-group" and not arg:
            groups.add(name)  # `neighbor PG peer-group` defines the group
        else:
            peers.add(name)
    return len(peers - groups)


def node_cost_mb(node: Node) -> int:
    """The memory (MB, PSS) one node of a twin is expected to hold."""
    if node.role == "frr":
        cost = NODE_COST_MB + sum(DAEMON_EXTRA_MB.get(d, 0) for d in node.daemons)
        if "bgpd" in node.daemons:
            cost += math.ceil(max(0, bgp_neighbors(node.frr_conf) - BGP_PEERS_IN_NODE_COST) * BGP_PEER_MB)
        return cost
    return HOST_NODE_MB if node.role == "host" else 0


def twin_cost_mb(topology: Topology) -> int:
    """The memory (MB, PSS) a twin of `topology` is expected to hold while it runs."""
    return TWIN_BASE_MB + sum(node_cost_mb(node) for node in topology.nodes.values())


def host_available_mb(meminfo: str = "/proc/meminfo") -> int:
    """MemAvailable of this host in MB (0 when it cannot be read)."""
    try:
        with open(meminfo) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def host_total_mb(meminfo: str = "/proc/meminfo") -> int:
    """MemTotal of this host in MB (0 when it cannot be read)."""
    try:
        with open(meminfo) as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def default_host_budget_mb(reserve_mb: int = 2048) -> int:
    """A worker host's budget for twins when the site sets none: its memory less a reserve for
    the OS, the worker processes and everything else (the ledger counts only twins)."""
    return max(0, host_total_mb() - reserve_mb)


def default_budget_mb(reserve_mb: int = 1024) -> int:
    """A budget for twins when the site sets none: what the host has free, less a reserve for itself."""
    return max(0, host_available_mb() - reserve_mb)


class CapacityLedger:
    """The memory promised to twins on this host, shared by every worker process through one file.

    A worker admits a run only when the run's cost fits what the budget has left; the entry is
    released when the run ends, and an entry whose process died (a killed worker) no longer
    counts. The file is guarded by `flock`, so concurrent workers never both take the last MB.
    """

    def __init__(self, path: str | Path, budget_mb: int) -> None:
        self.path = Path(path)
        self.budget_mb = budget_mb

    def _locked(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path.with_suffix(".lock"), "a+")  # closed by the caller's finally
        fcntl.flock(fh, fcntl.LOCK_EX)
        return fh

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        from .runstate import pid_matches

        # An entry of a dead process (worker killed mid-run) frees its memory.
        return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("pid"), int)
                and pid_matches(v["pid"], v.get("start"))}

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, sort_keys=True))
        os.replace(tmp, self.path)

    def admit(self, run_id: str, need_mb: int) -> tuple[bool, int]:
        """Reserve `need_mb` for `run_id` if it fits; returns (admitted, MB free before this run)."""
        from .runstate import proc_start_time

        fh = self._locked()
        try:
            entries = self._read()
            entries.pop(run_id, None)  # a retried run replaces its own reservation
            free = self.budget_mb - sum(int(e["mb"]) for e in entries.values())
            if need_mb > free:
                self._write(entries)
                return False, free
            entries[run_id] = {"mb": int(need_mb), "pid": os.getpid(), "start": proc_start_time(os.getpid())}
            self._write(entries)
            return True, free
        finally:
            fh.close()

    def release(self, run_id: str) -> None:
        fh = self._locked()
        try:
            entries = self._read()
            if entries.pop(run_id, None) is not None:
                self._write(entries)
        finally:
            fh.close()

    def reserved(self) -> dict[str, int]:
        fh = self._locked()
        try:
            return {k: int(v["mb"]) for k, v in self._read().items()}
        finally:
            fh.close()
