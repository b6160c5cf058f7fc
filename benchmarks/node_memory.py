"""Memory per router by role: how bgpd grows with its BGP sessions (the admission's per-neighbour charge).

    .venv/bin/python benchmarks/node_memory.py [--sizes 20,50,100]   # as root

For each size N a leaf-spine eBGP fabric (`twin.fabricgen`: 2 spines up to 50 nodes, 4 above)
is spawned with `NetnsBackend`, converged, and the Pss of every daemon of every router read from
/proc/PID/smaps_rollup; printed: the average spine and leaf (all daemons, and bgpd alone) with
their BGP neighbour counts. A spine peers with every leaf, a leaf with every spine, so the two
roles bracket how much a router's sessions cost. Figures printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.capacity import bgp_neighbors, node_cost_mb  # noqa: E402
from twin.fabricgen import fabric_write  # noqa: E402
from twin.netns import NetnsBackend  # noqa: E402
from twin.runstate import pss_kb  # noqa: E402
from twin.topology import load_lab  # noqa: E402


def pss_mb(pid: int) -> float:
    return pss_kb(pid) / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20,50,100")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    print(f"# node_memory: leaf-spine eBGP fabrics, load average at start {os.getloadavg()[0]:.1f}")
    print("| fabric | role | BGP neighbours | MB all daemons | MB bgpd | charged MB |")
    print("|---|---|---|---|---|---|")
    for n in [int(x) for x in a.sizes.split(",")]:
        spines = 2 if n <= 50 else 4
        with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
            lab = Path(tmp) / "fab"
            fabric_write(lab, spines, n - spines, name=f"fab{n}")
            topo = load_lab(lab)
            twin = NetnsBackend().spawn(topo)
            try:
                conv = twin.converge(600, 3.0)
                per = {node: {d: pss_mb(pid) for d, (pid, _) in daemons.items()}
                       for node, daemons in twin.state["daemons"].items()}
            finally:
                twin.teardown()
        for role in ("spine", "leaf"):
            nodes = [x for x in per if x.startswith(role)]
            total = sum(sum(per[x].values()) for x in nodes) / len(nodes)
            bgpd = sum(per[x].get("bgpd", 0.0) for x in nodes) / len(nodes)
            first = topo.nodes[nodes[0]]
            print(f"| {n}{'' if conv.converged else ' (not converged)'} | {role} | {bgp_neighbors(first.frr_conf)} | "
                  f"{total:.1f} | {bgpd:.1f} | {node_cost_mb(first)} |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
