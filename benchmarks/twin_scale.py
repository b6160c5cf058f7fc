"""How the netns twin scales, against a raw baseline of the same network.

    sudo .venv/bin/python benchmarks/twin_scale.py [--sizes 10,50,100,200] [--stable-for 3]

For each size N a leaf-spine eBGP fabric of N routers (2 spines up to 50 nodes, 4 above;
`twin.fabricgen`) is brought up twice, one after the other:

* raw: plain `ip netns` + veths + FRR daemons (`-N <ns> -f /dev/null`, then
  `vtysh -N <ns> -f frr.conf`), no AEGIS code at all; converged = every router's kernel FIB
  holds all the loopback routes it should (polled with `ip -n NS route`);
* aegis: `NetnsBackend.spawn` + `converge` + `snapshot` (with the reachability sample) +
  `teardown`.

Printed per size: seconds to spawn, spawn->converged (the moment the final state was first
seen; for AEGIS also the wall time until converge() returned, which adds the stability window),
snapshot, teardown, PSS per node (all daemons of the run, /proc/PID/smaps_rollup), and the
ratio aegis/raw of spawn->converged. The figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.fabricgen import fabric_write  # noqa: E402
from twin.netns import NetnsBackend, _raise_neighbour_limits, mac_for  # noqa: E402
from twin.reap import twin_runs  # noqa: E402
from twin.runstate import pss_kb  # noqa: E402
from twin.topology import load_lab  # noqa: E402

FRR = "/usr/lib/frr"




def expected_bgp_routes(topo) -> dict[str, int]:
    spines = [n for n in topo.routers() if n.startswith("spine")]
    leaves = [n for n in topo.routers() if n.startswith("leaf")]
    # spines share an AS, so a spine learns only leaf loopbacks; a leaf learns every other loopback
    return {**{s: len(leaves) for s in spines}, **{leaf: len(spines) + len(leaves) - 1 for leaf in leaves}}


def run(argv: list[str], input: str | None = None) -> None:
    subprocess.run(argv, input=input, text=True, capture_output=True, check=True)


def raw_baseline(lab: Path, timeout: float) -> dict[str, float]:
    """The same fabric with nothing but ip, the FRR daemons and vtysh."""
    topo = load_lab(lab)
    tag = f"rawb{os.getpid() % 10000:04d}"
    ns = {n: f"aegis-{tag}-{n}" for n in topo.routers()}  # aegis- prefix: still ours, still unique
    work = Path(tempfile.mkdtemp(prefix=f"aegis-{tag}-"))
    expected = expected_bgp_routes(topo)
    # A host setting, not AEGIS logic: without room in the (host-wide) ARP table a 200-node
    # fabric cannot converge at all, raw or not.
    _raise_neighbour_limits(len(topo.links))
    pids: list[int] = []
    t0 = time.monotonic()
    try:
        run(["ip", "-batch", "-"], "".join(f"netns add {x}\n" for x in ns.values()))
        procs = [subprocess.Popen(["ip", "netns", "exec", x, "sh", "-c",
                                   "sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
                                   "net.ipv6.conf.default.accept_dad=0 && ip link set lo up"]) for x in ns.values()]
        for p in procs:
            p.wait()
        run(["ip", "-batch", "-"], "".join(
            f"link add name {ln.a.iface} address {mac_for(topo.name, ln.a.node, ln.a.iface)} netns {ns[ln.a.node]} "
            f"type veth peer name {ln.b.iface} address {mac_for(topo.name, ln.b.node, ln.b.iface)} "
            f"netns {ns[ln.b.node]}\n" for ln in topo.links))
        ups: dict[str, list[str]] = {}
        for ln in topo.links:
            for ep in (ln.a, ln.b):
                ups.setdefault(ns[ep.node], []).append(f"link set {ep.iface} up\n")
        for x, lines in ups.items():
            run(["ip", "-n", x, "-batch", "-"], "".join(lines))
        t_net = time.monotonic() - t0
        for n, x in ns.items():
            d = work / n
            d.mkdir()
            (d / "frr.conf").write_text(topo.nodes[n].frr_conf or "")
            shutil.chown(d, "frr", "frr")
            os.makedirs(f"/var/run/frr/{x}", exist_ok=True)
            shutil.chown(f"/var/run/frr/{x}", "frr", "frr")
        for daemon in ("zebra", "staticd", "bgpd"):  # all of one kind in parallel, kinds in order
            procs = [subprocess.Popen(["ip", "netns", "exec", x, f"{FRR}/{daemon}", "-d", "-N", x, "-P", "0",
                                       "-f", "/dev/null", "-i", f"/var/run/frr/{x}/{daemon}.pid",
                                       "--log", f"file:{work}/{n}/{daemon}.log"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for n, x in ns.items()]
            for p in procs:
                p.wait()
        for x in ns.values():
            for daemon in ("zebra", "staticd", "bgpd"):
                try:
                    pids.append(int(Path(f"/var/run/frr/{x}/{daemon}.pid").read_text()))
                except (OSError, ValueError):
                    pass
        procs = [subprocess.Popen(["ip", "netns", "exec", x, "vtysh", "-N", x, "-f", str(work / n / "frr.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n, x in ns.items()]
        for p in procs:
            p.wait()
        t_spawn = time.monotonic() - t0
        converged = None
        while time.monotonic() - t0 < timeout:
            done = 0
            for n, x in ns.items():
                out = subprocess.run(["ip", "-n", x, "route", "show", "proto", "bgp"], capture_output=True,
                                     text=True).stdout
                done += out.count("\n") >= expected[n]
            if done == len(ns):
                converged = time.monotonic() - t0
                break
            time.sleep(0.2)
        pss = sum(pss_kb(p) for p in pids) / 1024 / len(ns)
    finally:
        t1 = time.monotonic()
        for p in pids:
            try:
                if open(f"/proc/{p}/cmdline").read().startswith(FRR):
                    os.kill(p, 9)
            except OSError:
                pass
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {x}\n" for x in ns.values()),
                       text=True, capture_output=True)
        for x in ns.values():
            shutil.rmtree(f"/var/run/frr/{x}", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        t_down = time.monotonic() - t1
    return {"net": t_net, "spawn": t_spawn, "converged": converged or float("nan"), "pss": pss, "teardown": t_down}


def aegis(lab: Path, timeout: float, stable_for: float) -> dict[str, float]:
    topo = load_lab(lab)
    t0 = time.monotonic()
    twin = NetnsBackend().spawn(topo)
    try:
        t_spawn = time.monotonic() - t0
        conv = twin.converge(timeout, stable_for)
        t_conv_wall = time.monotonic() - t0
        pids = [p for d in twin.state["daemons"].values() for p, _ in d.values()]
        pss = sum(pss_kb(p) for p in pids) / 1024 / len(topo.routers())
        t1 = time.monotonic()
        snap = twin.snapshot()
        t_snap = time.monotonic() - t1
    finally:
        t2 = time.monotonic()
        twin.teardown()
        t_down = time.monotonic() - t2
    pairs = snap["reachability"]["pairs"]
    return {"net": twin.facts["network_s"], "spawn": t_spawn,
            "converged": t_spawn + conv.seconds if conv.converged else float("nan"),
            "converge_wall": t_conv_wall, "snapshot": t_snap, "teardown": t_down, "pss": pss,
            "reach": f"{sum(pairs.values())}/{len(pairs)}", "ok": conv.converged}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,50,100,200")
    p.add_argument("--stable-for", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=300.0)
    a = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    print(f"# twin_scale: leaf-spine eBGP fabrics, FRR 8.4.4, {os.cpu_count()} CPUs, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print("| nodes | links | raw spawn s | raw spawn->converged s | aegis spawn s | aegis spawn->converged s | ratio "
          "| aegis converge() returned s | snapshot s | reach | teardown s (raw/aegis) | PSS/node MB (raw/aegis) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in [int(x) for x in a.sizes.split(",")]:
        spines = 2 if n <= 50 else 4
        with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
            lab = Path(tmp) / "fab"
            fabric_write(lab, spines, n - spines, name=f"fab{n}")
            links = spines * (n - spines)
            raw = raw_baseline(lab, a.timeout)
            ag = aegis(lab, a.timeout, a.stable_for)
        ratio = ag["converged"] / raw["converged"]
        print(f"| {n} | {links} | {raw['spawn']:.2f} | {raw['converged']:.2f} | {ag['spawn']:.2f} | "
              f"{ag['converged']:.2f} | {ratio:.2f} | {ag['converge_wall']:.2f} | {ag['snapshot']:.2f} | {ag['reach']} | "
              f"{raw['teardown']:.2f} / {ag['teardown']:.2f} | {raw['pss']:.1f} / {ag['pss']:.1f} |", flush=True)
    dead = [r["run_id"] for r in twin_runs() if not r["owner_alive"]]
    print(f"load average at end {os.getloadavg()[0]:.1f}; runs left by dead owners: {dead}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
