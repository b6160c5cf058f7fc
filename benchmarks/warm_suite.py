"""Forty consecutive warm preflights over twenty real corpus labs, beside their cold runs.

    sudo .venv/bin/python benchmarks/warm_suite.py [--labs N] [--rounds 2] [--markdown]

One warm-twin pool (twin/pool.py) for the whole suite, as a long-lived worker has. First every
lab runs once cold (spawn, settle, baseline, change, rollback; the pool keeps the twin after a
proven rollback); then `--rounds` passes over all labs run one after the other on the warm
twins. The change is the same kind everywhere: a static route to Null0 on the lab's first
router, declared in `expect`. Printed: per lab the cold seconds, each warm run's seconds,
whether it really was warm, the verdicts and the pool memory the lab's twin holds; then the
warm suite's total and median per run. Figures are printed, never asserted. Needs root and FRR.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight.core.change import change_from_parts  # noqa: E402
from preflight.core.pipeline import run_preflight  # noqa: E402
from twin.pool import TwinPool  # noqa: E402
from twin.topology import load_lab  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
# BGP/BFD labs of the corpus that settle with every session up (docs/twin.md, corpus table):
# a lab with sessions down by design settles again before its baseline, which measures the lab.
LABS = [
    "containerlab-free-labs__bgp-ebgp-basics", "frr-topotests__bfd_bgp_cbit_topo3",
    "frr-topotests__bgp_aggregate_address_matching_med", "frr-topotests__bgp_aggregate_address_route_map",
    "frr-topotests__bgp_as_override", "frr-topotests__bgp_bfd_down_cease_notification",
    "frr-topotests__bgp_blackhole_community", "frr-topotests__bgp_comm_list_delete",
    "frr-topotests__bgp_community_change_update", "frr-topotests__bgp_conditional_advertisement",
    "frr-topotests__bgp_confederation_astype", "frr-topotests__bgp_default_route",
    "frr-topotests__bgp_ebgp_common_subnet_nexthop_unchanged", "frr-topotests__bgp_ebgp_requires_policy",
    "frr-topotests__bgp_link_bw_ip", "frr-topotests__bgp_llgr", "frr-topotests__bgp_local_as_private_remove",
    "frr-topotests__bgp_peer_group", "frr-topotests__bgp_reject_as_sets", "frr-topotests__bgp_rr_ibgp",
]


def change_for(topology) -> dict:
    node = topology.routers()[0]
    return change_from_parts(title="suite: a static route to Null0", description="",
                             devices={node: "ip route 10.99.0.0/24 Null0\n"},
                             expect={"prefixes_added": {node: ["10.99.0.0/24"]}}, source="api", topology=topology)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--failures-max", type=int, default=0,
                        help="failure scenarios per run (0: none, so the suite measures the twin; pipeline default 8)")
    parser.add_argument("--warm-mb", type=float, default=8192.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    print(f"load at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    labs = [CORPUS / name for name in LABS[: args.labs]]
    topologies = {lab: load_lab(lab) for lab in labs}
    rows: dict[Path, dict] = {}
    pool = TwinPool(budget_mb=args.warm_mb)
    try:
        for lab in labs:
            t0 = time.monotonic()
            r = run_preflight(lab, change_for(topologies[lab]), backend="netns", converge_timeout=args.timeout,
                              failures_max=args.failures_max, twin_pool=pool)
            rows[lab] = {"cold_s": time.monotonic() - t0, "cold_verdict": r["verdict"],
                         "kept": bool((r["twin"].get("pool") or {}).get("kept")), "warm": [],
                         "routers": len(topologies[lab].routers())}
            held = {h["twin_id"]: h for h in pool.holdings()}
            rows[lab]["pool_mb"] = held.get((r["twin"].get("pool") or {}).get("twin_id"), {}).get("memory_mb")
            print(f"cold {lab.name}: {rows[lab]['cold_s']:.1f} s {r['verdict']} "
                  f"{[x['code'] for x in r['reasons']]} kept={rows[lab]['kept']} pool {rows[lab]['pool_mb']} MB",
                  flush=True)
        t_suite = time.monotonic()
        for _ in range(args.rounds):
            for lab in labs:
                t0 = time.monotonic()
                r = run_preflight(lab, change_for(topologies[lab]), backend="netns",
                                  converge_timeout=args.timeout, failures_max=args.failures_max, twin_pool=pool)
                s = time.monotonic() - t0
                rows[lab]["warm"].append((s, r["twin"]["warm"], r["verdict"]))
                print(f"warm {lab.name}: {s:.1f} s warm={r['twin']['warm']} {r['verdict']} "
                      f"{[x['code'] for x in r['reasons']]}", flush=True)
        total = time.monotonic() - t_suite
        pool_total = pool.memory_mb()
    finally:
        pool.close()
    warm_all = [w[0] for row in rows.values() for w in row["warm"]]
    really_warm = sum(1 for row in rows.values() for w in row["warm"] if w[1])
    cold_all = [row["cold_s"] for row in rows.values()]
    print()
    print(f"load at end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"SUITE: {len(warm_all)} warm preflights over {len(rows)} labs: total {total:.1f} s, median "
          f"{statistics.median(warm_all):.1f} s per run ({really_warm} on a warm twin); the same labs cold: "
          f"total {sum(cold_all):.1f} s, median {statistics.median(cold_all):.1f} s; pool held {pool_total:.0f} MB")
    if args.markdown:
        print()
        print("| lab | routers | cold s | warm s (each run) | verdict cold / warm | pool MB |")
        print("|---|---|---|---|---|---|")
        for lab, row in rows.items():
            warm = ", ".join(f"{s:.1f}{'' if w else ' (cold)'}" for s, w, _ in row["warm"])
            verdicts = f"{row['cold_verdict']} / {', '.join(sorted({v for _, _, v in row['warm']}))}"
            print(f"| {lab.name.split('__')[-1]} | {row['routers']} | {row['cold_s']:.1f} | {warm} | {verdicts} | "
                  f"{row['pool_mb']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
