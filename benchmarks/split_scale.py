"""The largest fabric one twin host holds, and the same fabric split across two agents.

    .venv/bin/python benchmarks/split_scale.py   # as root [--sizes 20,50,100,200] [--modes one,split]

Two "hosts" are made on this machine the way twin/tests/test_split_netns.py makes them: two
network namespaces joined by a veth underlay, each running `manage.py twin_agent` (real HTTP,
real FRR, VXLAN between the hosts). For each size N a leaf-spine eBGP fabric (`twin.fabricgen`:
2 spines up to 50 nodes, 4 above) is brought up:

* one: through one agent whose budget holds the whole fabric (the http backend);
* split: through both agents (`SplitBackend`), each with a budget for a little over half the
  fabric, so placement must split it and cross-host links become VXLAN tunnels.

Printed per size and mode: spawn s, spawn->converged s (spawn + ConvergeResult.seconds, as in
twin_scale.py), converge() returned s (adds the 3 s window), snapshot s and the reachability
sample, teardown s, and memory per host: PSS of the twin's FRR daemons on that host
(/proc/PID/smaps_rollup of every daemon recorded in a run owned by that host's agent) and the
agent process's own PSS. Then the host's budget for twins (MemTotal less 2 GB) over the largest
measured PSS per router: the largest fabric one such host holds. Figures printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")

from twin import runstate  # noqa: E402
from twin.capacity import TWIN_BASE_MB, host_total_mb, twin_cost_mb  # noqa: E402
from twin.fabricgen import fabric_write  # noqa: E402
from twin.netns import _raise_neighbour_limits  # noqa: E402
from twin.reap import twin_runs  # noqa: E402
from twin.remote import RemoteBackend  # noqa: E402
from twin.runstate import pss_kb  # noqa: E402
from twin.split import SplitBackend, node_cost_mb  # noqa: E402
from twin.tests.agent_helpers import TOKEN  # noqa: E402
from twin.tests.test_split_netns import HostedAgent, TwoHosts  # noqa: E402
from twin.topology import load_lab  # noqa: E402

RESERVE_MB = 2048  # what a twin host keeps for itself (the agent's default budget keeps 1 GB)




def twin_pss_mb(owner: int) -> tuple[float, int]:
    """(PSS MB of every FRR daemon of runs owned by `owner`, routers counted)."""
    total, routers = 0, 0
    if not runstate.RUN_ROOT.is_dir():
        return 0.0, 0
    for p in runstate.RUN_ROOT.iterdir():
        st = runstate.state_read(p)
        if st is None or st.get("owner_pid") != owner:
            continue
        for daemons in (st.get("daemons") or {}).values():
            routers += 1
            total += sum(pss_kb(pid) for pid, start in daemons.values() if runstate.pid_matches(pid, start))
    return total / 1024, routers


def measure(backend, topo, agents: list[HostedAgent], timeout: float, stable_for: float) -> dict:
    t0 = time.monotonic()
    twin = backend.spawn(topo, None)
    try:
        t_spawn = time.monotonic() - t0
        conv = twin.converge(timeout, stable_for)
        t_conv_wall = time.monotonic() - t0
        hosts = []
        for a in agents:
            mb, routers = twin_pss_mb(a.proc.pid)
            if routers:
                hosts.append({"routers": routers, "twin_mb": mb, "agent_mb": pss_kb(a.proc.pid) / 1024})
        t1 = time.monotonic()
        snap = twin.snapshot()
        t_snap = time.monotonic() - t1
        tunnels = twin.facts.get("tunnels", 0)
    finally:
        t2 = time.monotonic()
        twin.teardown()
        t_down = time.monotonic() - t2
    pairs = snap["reachability"]["pairs"]
    return {"spawn": t_spawn, "converged": t_spawn + conv.seconds if conv.converged else float("nan"),
            "wall": t_conv_wall, "snapshot": t_snap, "teardown": t_down, "hosts": hosts, "tunnels": tunnels,
            "reach": f"{sum(pairs.values())}/{len(pairs)}", "ok": conv.converged}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20,50,100,200")
    p.add_argument("--modes", default="one,split")
    p.add_argument("--stable-for", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=600.0)
    a = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    import django

    django.setup()
    sizes = [int(x) for x in a.sizes.split(",")]
    modes = a.modes.split(",")
    # The neighbour table is the host's (the agents run in namespaces, which may not raise it).
    tuning = _raise_neighbour_limits(max(4 * (n - 4) for n in sizes) if max(sizes) > 50 else 0)
    print(f"# split_scale: leaf-spine eBGP fabrics through twin agents, {os.cpu_count()} CPUs, "
          f"MemTotal {host_total_mb()} MB, load average at start {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
          + (f"; host tuning: {', '.join(tuning)}" if tuning else ""))
    print("| nodes | links | mode | tunnels | spawn s | spawn->converged s | converge() returned s | snapshot s "
          "| reach | teardown s | routers per host | twin PSS MB per host | agent PSS MB per host | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    token_dir = tempfile.TemporaryDirectory(prefix="aegis-split-bench-")
    token_file = Path(token_dir.name) / "agent.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    hosts = TwoHosts()
    per_router: list[float] = []
    try:
        for n in sizes:
            spines = 2 if n <= 50 else 4
            with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
                lab = Path(tmp) / "fab"
                fabric_write(lab, spines, n - spines, name=f"fab{n}")
                topo = load_lab(lab)
                links = len(topo.links)
                for mode in modes:
                    if mode == "one":
                        budgets = [twin_cost_mb(topo) + 64]
                    else:
                        half = math.ceil(len(topo.routers()) / 2) + 1
                        budgets = [TWIN_BASE_MB + half * max(node_cost_mb(topo, r) for r in topo.routers())] * 2
                    agents: list[HostedAgent] = []
                    try:
                        for i, budget in enumerate(budgets):
                            agents.append(HostedAgent(hosts.hosts[i], hosts.mgmt[i], hosts.underlay[i], token_file,
                                                      budget))
                        remotes = [RemoteBackend(ag.url, token=TOKEN, lease_s=120.0) for ag in agents]
                        backend = remotes[0] if mode == "one" else SplitBackend(remotes)
                        r = measure(backend, topo, agents, a.timeout, a.stable_for)
                    finally:
                        for ag in agents:
                            ag.stop()
                    for h in r["hosts"]:
                        per_router.append(h["twin_mb"] / h["routers"])
                    hs = r["hosts"]
                    print(f"| {n} | {links} | {mode} | {r['tunnels']} | {r['spawn']:.1f} | {r['converged']:.1f} | "
                          f"{r['wall']:.1f} | {r['snapshot']:.1f} | {r['reach']} | {r['teardown']:.1f} | "
                          f"{' / '.join(str(h['routers']) for h in hs)} | "
                          f"{' / '.join(format(h['twin_mb'], '.0f') for h in hs)} | "
                          f"{' / '.join(format(h['agent_mb'], '.0f') for h in hs)} | {os.getloadavg()[0]:.1f} |",
                          flush=True)
    finally:
        hosts.close()
        token_dir.cleanup()
    if per_router:
        worst = max(per_router)
        budget = host_total_mb() - RESERVE_MB
        charged = (twin_cost_mb(topo) - TWIN_BASE_MB) / len(topo.routers())  # the largest fabric of the run
        print(f"largest PSS per router measured: {worst:.1f} MB; a host of {host_total_mb()} MB keeping "
              f"{RESERVE_MB} MB for itself holds ~{int((budget - TWIN_BASE_MB) / worst)} such routers in one twin "
              f"(the admission charges {charged:.1f} MB per router of the {len(topo.routers())}-router fabric: "
              f"~{int((budget - TWIN_BASE_MB) / charged)})")
    dead = [r["run_id"] for r in twin_runs() if not r["owner_alive"]]
    print(f"load average at end {' '.join(f'{x:.1f}' for x in os.getloadavg())}; runs left by dead owners: {dead}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
