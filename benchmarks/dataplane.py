"""Benchmark of the data-plane diff (preflight/core/dataplane.py) on leaf-spine fabrics.

    .venv/bin/python benchmarks/dataplane.py --sizes 10,50,200 [--real 10,50]

For each size a fabric lab is generated (`twin.fabricgen`; 2 spines up to 50 nodes, 4 above,
as benchmarks/twin_scale.py). The FIBs:
- `--real N`: a real twin (root, FRR) is spawned, settles, and every router's kernel FIB is read
  (`Twin.fib()`); the synthetic FIB of the same lab is checked against it (the diff between the
  two must be empty), then the twin is torn down.
- otherwise synthetic FIBs of exactly the shape the real fabric installs (locals, connected
  /31s, ECMP eBGP routes to every leaf loopback over every spine, each spine's loopback over
  its own link); used for 200 nodes, where a real twin (~5 GB, minutes) is too heavy for the
  shared 2-core host.
The "after" FIB adds a loop (spine1 <-> leaf2 for 10.77.0.0/16) and withdraws one leaf loopback
from spine1 (a blackhole on half the ECMP branches), so the diff has statements to build.
Prints classes, pairs, seconds and peak memory (tracemalloc) per size, as a markdown table.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight.core.dataplane import dataplane_diff  # noqa: E402
from twin.base import Topology  # noqa: E402
from twin.fabricgen import fabric_write  # noqa: E402
from twin.fib import fib_links  # noqa: E402
from twin.frrconf import config_model  # noqa: E402
from twin.topology import load_lab  # noqa: E402


def synthetic_fib(topology: Topology) -> dict[str, Any]:
    """The FIBs a converged fabric installs, written from its configs (no twin)."""
    models = {n: config_model(topology.nodes[n].frr_conf or "") for n in topology.routers()}
    links = fib_links(topology)
    addr: dict[str, str] = {}  # "node:iface" -> address/len
    for n, m in models.items():
        for iface, addrs in m.addresses.items():
            for a in addrs:
                addr[f"{n}:{iface}"] = a
    lo = {n: addr[f"{n}:lo"].split("/")[0] for n in models}
    spines = [n for n in models if n.startswith("spine")]
    leaves = [n for n in models if n.startswith("leaf")]
    nodes: dict[str, Any] = {}
    for n in models:
        routes: list[dict[str, Any]] = []
        addresses = []
        for key, a in addr.items():
            node, iface = key.split(":")
            if node != n:
                continue
            ip = ipaddress.ip_interface(a)
            addresses.append({"dev": iface, "address": a})
            routes.append({"dst": f"{ip.ip}/32", "table": "local", "type": "local", "nexthops": [{"dev": iface}]})
            if iface != "lo":
                routes.append({"dst": str(ip.network), "table": "main", "type": "unicast",
                               "nexthops": [{"dev": iface}]})
        peers = {}  # neighbour router -> (its address on the link, my iface)
        for key, others in links.items():
            node, iface = key.split(":")
            if node == n:
                for o in others:
                    peers[o.split(":")[0]] = (addr[o].split("/")[0], iface)
        if n in leaves:
            for other in leaves:
                if other != n:
                    hops = [{"via": peers[s][0], "dev": peers[s][1]} for s in spines]
                    routes.append({"dst": f"{lo[other]}/32", "table": "main", "type": "unicast",
                                   "nexthops": sorted(hops, key=lambda h: (h["via"], h["dev"]))})
            for s in spines:
                routes.append({"dst": f"{lo[s]}/32", "table": "main", "type": "unicast",
                               "nexthops": [{"via": peers[s][0], "dev": peers[s][1]}]})
        else:
            for leaf in leaves:
                routes.append({"dst": f"{lo[leaf]}/32", "table": "main", "type": "unicast",
                               "nexthops": [{"via": peers[leaf][0], "dev": peers[leaf][1]}]})
        nodes[n] = {"routes": sorted(routes, key=lambda r: (r["table"], r["dst"], r["type"])),
                    "addresses": sorted(addresses, key=lambda a: (a["dev"], a["address"])), "skipped_tables": []}
    return {"nodes": nodes, "links": links}


def changed_fib(fib: dict[str, Any]) -> dict[str, Any]:
    after = copy.deepcopy(fib)
    s1, l2 = after["nodes"]["spine1"], after["nodes"]["leaf2"]
    l2_lo = next(a["address"] for a in l2["addresses"] if a["dev"] == "lo")
    via_l2 = next(r for r in s1["routes"] if r["table"] == "main" and r["dst"] == l2_lo)
    s1["routes"].append({"dst": "10.77.0.0/16", "table": "main", "type": "unicast",
                         "nexthops": [h for h in via_l2["nexthops"]]})
    l2_to_s1 = next(r for r in l2["routes"] if r["table"] == "main" and len(r["nexthops"]) == 1
                    and r["nexthops"][0].get("via"))
    l2["routes"].append({"dst": "10.77.0.0/16", "table": "main", "type": "unicast", "nexthops": l2_to_s1["nexthops"]})
    # spine1 forgets the last leaf's loopback: leaves whose ECMP branch goes via spine1 drop it.
    last = max(r["dst"] for r in s1["routes"] if r["dst"].startswith("10.254.") and r["table"] == "main")
    s1["routes"] = [r for r in s1["routes"] if not (r["dst"] == last and r["table"] == "main")]
    return after


def measure(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    tracemalloc.start()
    t0 = time.perf_counter()
    r = dataplane_diff(before, after)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t0 = time.perf_counter()
    dataplane_diff(before, after)
    untraced = time.perf_counter() - t0
    return {"classes": r.classes, "pairs": r.pairs_checked, "seconds": untraced, "traced_seconds": seconds,
            "peak_mb": peak / 1e6, "statements": len(r.changed), "loops": len(r.loops),
            "blackholes": len(r.blackholes), "routes": sum(len(n["routes"]) for n in before["nodes"].values())}


def real_fib(topology: Topology) -> tuple[dict[str, Any], float]:
    from twin.netns import NetnsBackend

    twin = NetnsBackend().spawn(topology, None)
    try:
        cr = twin.converge(600)
        if not cr.converged:
            raise SystemExit(f"the fabric did not converge: {cr.still_moving[:3]}")
        t0 = time.perf_counter()
        fib = twin.fib()
        return fib, time.perf_counter() - t0
    finally:
        twin.teardown()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,50,200")
    p.add_argument("--real", default="", help="sizes to read from a real twin (needs root and FRR)")
    a = p.parse_args()
    real = {int(x) for x in a.real.split(",") if x}
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print("| routers | FIB source | routes | classes | (ingress, class) pairs | statements (loops / blackholes) "
          "| seconds | peak MB | FIB read s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in [int(x) for x in a.sizes.split(",") if x]:
        spines = 2 if size <= 50 else 4
        with tempfile.TemporaryDirectory() as tmp:
            fabric_write(tmp, spines, size - spines, name=f"dp{size}")
            topology = load_lab(tmp)
            fib = synthetic_fib(topology)
            source, read_s = "synthetic", "-"
            if size in real:
                got, secs = real_fib(topology)
                check = dataplane_diff(got, fib)
                if check.changed:
                    print(f"  synthetic differs from the real FIB: {check.changed[0]['text']}")
                fib, source, read_s = got, "real twin", f"{secs:.2f}"
            m = measure(fib, changed_fib(fib))
        print(f"| {size} | {source} | {m['routes']} | {m['classes']} | {m['pairs']} | {m['statements']} "
              f"({m['loops']} / {m['blackholes']}) | {m['seconds']:.2f} | {m['peak_mb']:.1f} | {read_s} |")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
