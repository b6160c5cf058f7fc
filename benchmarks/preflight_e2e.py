"""End-to-end preflight time, per step, against one raw spawn->converge of the same twin.

    sudo .venv/bin/python benchmarks/preflight_e2e.py [--sizes triangle,10,50,100] [--markdown]

For each lab (the bundled `triangle`, and leaf-spine eBGP fabrics of N routers generated with
`twin.fabricgen`: 2 spines up to 50 nodes, 4 above) it runs, one after the other:

* raw: `NetnsBackend.spawn` + `converge` (wall time until converge() returned) + teardown;
* pipeline: `run_preflight` with a clean, declared change (the last leaf, or r3, announces a
  new /24), timed end to end, with the pipeline's own per-step timings.

* cold: `run_preflight` with a warm-twin pool that is empty (a worker's first run of the lab:
  spawn, settle, ..., and the pool keeps the twin after its proven rollback);
* warm: the same change again, on the twin the pool kept (twin/pool.py).

`--backend http`: cold and warm run through a twin agent started here on loopback
(`manage.py twin_agent`, its warm pool: docs/twin.md "Warm twins on an agent"; stopped by PID
at the end); raw stays the same netns twin on this host.

Printed: seconds per step, end to end, raw spawn->converged, the ratios e2e / raw, and one
summary line per lab, `LAB: raw N s, cold N s (..x raw), warm N s (..x raw), pool N MB`.
Targets (issue 13): triangle warm <= 6 s, cold <= 12 s; fabric-10 warm <= 8 s. Figures are
printed, never asserted. Needs root and FRR.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight.core.change import change_from_parts  # noqa: E402
from preflight.core.pipeline import STEPS, run_preflight  # noqa: E402
from twin.fabricgen import fabric_write  # noqa: E402
from twin.netns import NetnsBackend  # noqa: E402
from twin.pool import TwinPool  # noqa: E402
from twin.remote import RemoteBackend  # noqa: E402
from twin.topology import load_lab  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHOWN_STEPS = ("static", "spawn", "converge_baseline", "snapshot_baseline", "apply", "converge_change",
               "snapshot_change", "invariants", "rollback", "converge_rollback", "snapshot_rollback", "teardown")


def lab_for(size: str, tmp: Path) -> Path:
    if size == "triangle":
        return REPO / "labs" / "triangle"
    n = int(size)
    spines = 2 if n <= 50 else 4
    return fabric_write(tmp / f"fabric{n}", spines, n - spines, name=f"fabric{n}")


def change_for(topology) -> dict:
    routers = topology.routers()
    node = "r3" if "r3" in routers else sorted(r for r in routers if r.startswith("leaf"))[-1]
    from twin.frrconf import config_model

    asn = config_model(topology.nodes[node].frr_conf or "").bgp_asn
    text = (f"ip route 10.99.0.0/24 Null0\nrouter bgp {asn}\n address-family ipv4 unicast\n"
            f"  network 10.99.0.0/24\n")
    return change_from_parts(title="benchmark: announce 10.99.0.0/24", description="", devices={node: text},
                             expect={"prefixes_added": {"*": ["10.99.0.0/24"]}}, source="api", topology=topology)


def raw_converge(topology, timeout: float) -> tuple[float, float, bool]:
    """(spawn s, spawn->converge() returned s, converged) of one plain twin run."""
    t0 = time.monotonic()
    twin = NetnsBackend().spawn(topology, None)
    try:
        spawn_s = time.monotonic() - t0
        cr = twin.converge(timeout)
        return spawn_s, time.monotonic() - t0, cr.converged
    finally:
        twin.teardown()


@contextlib.contextmanager
def agent_for(args: argparse.Namespace, tmp: Path) -> Iterator[RemoteBackend | None]:
    """With --backend http: a twin agent on loopback (its warm pool on), and the backend to reach it."""
    if args.backend != "http":
        yield None
        return
    token = secrets.token_urlsafe(32)
    token_file = tmp / "agent.token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    proc = subprocess.Popen([sys.executable, str(REPO / "manage.py"), "twin_agent", "--listen", "127.0.0.1:0",
                             "--token-file", str(token_file), "--warm-mb", str(int(args.warm_mb))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        line = ""
        while proc.stdout and "listening on" not in line:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("the twin agent did not start")
        threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
        port = line.split("listening on ")[1].split()[0].rsplit(":", 1)[1]
        print(f"twin agent pid {proc.pid} on 127.0.0.1:{port}", flush=True)
        yield RemoteBackend(f"http://127.0.0.1:{port}", token=token)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # it tears its twins down, warm ones included
        proc.wait(120)


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="triangle,10,50,100")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--failures-max", type=int, default=8,
                        help="failure scenarios before and after the change (the pipeline's default 8; 0: none)")
    parser.add_argument("--warm-mb", type=float, default=4096.0, help="memory budget of the warm-twin pool")
    parser.add_argument("--backend", choices=["netns", "http"], default="netns",
                        help="http: the pipeline's runs go through a twin agent on loopback (its own warm pool)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    rows = []
    print(f"load average at start: {_load()} ({os.cpu_count()} cores)", flush=True)
    with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp, agent_for(args, Path(tmp)) as remote:
        for size in args.sizes.split(","):
            lab = lab_for(size.strip(), Path(tmp))
            topology = load_lab(lab)
            spawn_s, raw_s, raw_ok = raw_converge(topology, args.timeout)
            # Cold first: a worker's first run of the lab (spawn, settle, ..., and the pool keeps
            # the twin after its proven rollback); then warm: the next run takes that twin.
            pool = TwinPool(budget_mb=args.warm_mb) if remote is None else None
            backend = remote or "netns"
            try:
                t0 = time.monotonic()
                result = run_preflight(lab, change_for(topology), backend=backend, converge_timeout=args.timeout,
                                       failures_max=args.failures_max, twin_pool=pool)
                e2e = time.monotonic() - t0
                t0 = time.monotonic()
                warm = run_preflight(lab, change_for(topology), backend=backend, converge_timeout=args.timeout,
                                     failures_max=args.failures_max, twin_pool=pool)
                warm_s = time.monotonic() - t0
                pool_mb = pool.memory_mb() if pool is not None else sum(
                    t["memory_mb"] for t in remote.status()["warm"]["twins"] if t["lab"] == topology.name)
            finally:
                if pool is not None:
                    pool.close()
            rows.append({"lab": size, "nodes": len(topology.routers()), "raw_spawn_s": spawn_s,
                         "raw_converged_s": raw_s, "raw_ok": raw_ok, "e2e_s": e2e, "verdict": result["verdict"],
                         "reasons": [r["code"] for r in result["reasons"]], "timings": result["timings"],
                         "warm_s": warm_s, "warm_used": warm["twin"]["warm"], "warm_verdict": warm["verdict"],
                         "warm_timings": warm["timings"], "pool_mb": pool_mb})
            r = rows[-1]
            print(f"{size}: {r['nodes']} routers, raw spawn->converged {raw_s:.1f} s "
                  f"({'ok' if raw_ok else 'NOT converged'}), cold {e2e:.1f} s = {e2e / raw_s:.1f}x raw, "
                  f"warm {warm_s:.1f} s = {warm_s / raw_s:.1f}x raw ({'warm twin' if r['warm_used'] else 'NOT warm'}), "
                  f"verdict cold {r['verdict']} {r['reasons']} warm {r['warm_verdict']}, pool {pool_mb:.0f} MB",
                  flush=True)
            for label, res in (("cold", result), ("warm", warm)):
                print(f"   {label}: " + ", ".join(f"{s} {res['timings'].get(s, 0):.2f}" for s in STEPS
                                                if res["timings"].get(s) is not None), flush=True)
    print()
    print(f"load average at end: {_load()}")
    for r in rows:
        print(f"{r['lab']}: raw {r['raw_converged_s']:.1f} s, cold {r['e2e_s']:.1f} s "
              f"({r['e2e_s'] / r['raw_converged_s']:.2f}x raw), warm {r['warm_s']:.1f} s "
              f"({r['warm_s'] / r['raw_converged_s']:.2f}x raw), pool {r['pool_mb']:.0f} MB")
    if args.markdown:
        print()
        print("| lab | routers | raw spawn→converged s | cold e2e s | warm e2e s | cold / raw | warm / raw | "
              "pool MB | verdict | run | " + " | ".join(SHOWN_STEPS) + " |")
        print("|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(SHOWN_STEPS))
        for r in rows:
            for label, timings in (("cold", r["timings"]), ("warm", r["warm_timings"])):
                steps = " | ".join(f"{timings.get(s, 0):.2f}" for s in SHOWN_STEPS)
                print(f"| {r['lab']} | {r['nodes']} | {r['raw_converged_s']:.1f} | {r['e2e_s']:.1f} | "
                      f"{r['warm_s']:.1f} | {r['e2e_s'] / r['raw_converged_s']:.2f}× | "
                      f"{r['warm_s'] / r['raw_converged_s']:.2f}× | {r['pool_mb']:.0f} | {r['verdict']} | {label} | "
                      f"{steps} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
