"""How much memory a twin needs, and a host's budget for twins. Django-free, no I/O but /proc/meminfo.

The per-node figure is measured, not guessed (docs/performance.md, twin benchmark): FRR's
zebra + staticd + bgpd take 22.5-26.5 MB PSS per node, growing with the routes a larger fabric
carries; ospfd, ospf6d or bfdd add a few MB more. We charge the top of the measured range plus
the extra daemons, so a budget errs on the side of admitting fewer twins.
"""

from __future__ import annotations

from .base import Topology

NODE_COST_MB = 27  # zebra + staticd + bgpd, top of the measured 22.5-26.5 MB PSS, rounded up
DAEMON_EXTRA_MB = {"ospfd": 5, "ospf6d": 4, "bfdd": 4, "isisd": 5, "ldpd": 4, "pimd": 5}
HOST_NODE_MB = 1  # a plain `host` node is a namespace and a `sleep`
TWIN_BASE_MB = 8  # the run folder, the switch namespace, vtysh and frr-reload while they run


def twin_cost_mb(topology: Topology) -> int:
    """The memory (MB, PSS) a twin of `topology` is expected to hold while it runs."""
    total = TWIN_BASE_MB
    for node in topology.nodes.values():
        if node.role == "frr":
            total += NODE_COST_MB + sum(DAEMON_EXTRA_MB.get(d, 0) for d in node.daemons)
        elif node.role == "host":
            total += HOST_NODE_MB
    return total


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


def default_budget_mb(reserve_mb: int = 1024) -> int:
    """A budget for twins when the site sets none: what the host has free, less a reserve for itself."""
    return max(0, host_available_mb() - reserve_mb)
