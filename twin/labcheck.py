"""`lab_check`: spawn a lab, let it converge, snapshot it, tear it down, report (Django-free)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import get_backend
from .base import Backend, Progress, no_progress
from .pool import warm_twins_held
from .topology import load_lab


def lab_check(lab_dir: str | Path, *, timeout: float = 120.0, stable_for: float = 3.0,
              backend: str | Backend = "netns", progress: Progress = no_progress) -> dict[str, Any]:
    """Check that a lab loads and converges. Raises TopologyError (bad lab) or TwinError (cannot spawn)."""
    topology = load_lab(lab_dir)  # TopologyError: bad input, nothing spawned
    be = get_backend(backend) if isinstance(backend, str) else backend
    t0 = time.monotonic()
    twin = be.spawn(topology, None, progress)
    report: dict[str, Any] = {"lab": topology.name, "source": topology.source}
    try:
        conv = twin.converge(timeout, stable_for)
        snap = twin.snapshot()
        sessions = [p for n in snap["nodes"].values() for p in n["bgp"].values()]
        adj = [a for n in snap["nodes"].values() for k in ("ospf", "ospf6") for a in n[k].values()]
        bfd = [b for n in snap["nodes"].values() for b in n["bfd"].values()]
        pairs = snap.get("reachability", {}).get("pairs", {})
        report.update({
            "converged": conv.converged,
            "convergence_s": conv.seconds,
            "still_moving": conv.still_moving,
            "down": getattr(conv, "down", []),
            "nodes": len(topology.routers()),
            "hosts": sum(1 for n in topology.nodes.values() if n.role == "host"),
            "bridges": sum(1 for n in topology.nodes.values() if n.role == "bridge"),
            "links": len(topology.links),
            "bgp_sessions": {"established": sum(1 for p in sessions if p["state"] == "Established"),
                             "total": len(sessions)},
            "ospf_adjacencies": {"full": sum(1 for a in adj if a["state"] == "Full"), "total": len(adj)},
            "bfd_peers": {"up": sum(1 for b in bfd if b["status"] == "up"), "total": len(bfd)},
            "routes": {n: len(s["routes"]) for n, s in snap["nodes"].items()},
            "reachability": {"ok": sum(1 for v in pairs.values() if v), "total": len(pairs),
                             "sampled": snap.get("reachability", {}).get("sampled", False),
                             "seed": snap.get("reachability", {}).get("seed"),
                             "failed": sorted(k for k, v in pairs.items() if not v)},
            "rejected_lines": [{"node": r.node, "line_no": r.line_no, "line": r.line, "message": r.message}
                               for r in twin.load_errors],
            "warnings": list(twin.facts.get("warnings", topology.warnings)),
            "frr_version": twin.facts.get("frr_version"),
            "backend": twin.facts.get("backend"),
            "tier": twin.facts.get("tier"),
            "twin_id": twin.facts.get("twin_id"),
            "spawn_s": twin.facts.get("spawn_s"),
        })
    finally:
        t1 = time.monotonic()
        twin.teardown()
        report["teardown_s"] = round(time.monotonic() - t1, 3)
        report["total_s"] = round(time.monotonic() - t0, 3)
    # What long-lived workers on this host hold warm (twin/pool.py): this lab's, and all of them.
    held = warm_twins_held()
    report["warm_twins"] = [w for w in held if w["lab"] == topology.name]
    report["warm_twins_host"] = {"twins": len(held), "memory_mb": round(sum(w.get("memory_mb") or 0 for w in held), 1),
                                 "labs": sorted({w["lab"] for w in held})}
    return report


def lab_check_text(r: dict[str, Any]) -> str:
    """The human summary `manage.py lab_check` prints."""
    out = [f"lab {r['lab']} ({r['source']}): {r['nodes']} routers, {r['hosts']} hosts, {r['bridges']} bridges, "
           f"{r['links']} links",
           f"twin {r.get('twin_id')} ({r.get('backend')}, FRR {r.get('frr_version')}) spawned in {r.get('spawn_s')} s"]
    if r["converged"]:
        out.append(f"converged in {r['convergence_s']} s")
    else:
        out.append(f"DID NOT SETTLE within {r['convergence_s']} s; still moving:")
        out += [f"  {m}" for m in r["still_moving"][:30]]
    b, o, f = r["bgp_sessions"], r["ospf_adjacencies"], r["bfd_peers"]
    out.append(f"BGP sessions Established: {b['established']}/{b['total']}; OSPF adjacencies Full: "
               f"{o['full']}/{o['total']}; BFD peers up: {f['up']}/{f['total']}")
    if r.get("down"):
        out.append("settled down (configured but not up):")
        out += [f"  {d}" for d in r["down"][:30]]
    out.append(f"selected routes: {sum(r['routes'].values())} "
               f"({', '.join(f'{n} {c}' for n, c in sorted(r['routes'].items())[:12])}"
               f"{', ...' if len(r['routes']) > 12 else ''})")
    reach = r["reachability"]
    out.append(f"loopback reachability: {reach['ok']}/{reach['total']} pairs"
               + (f" (sample, seed {reach['seed']})" if reach["sampled"] else ""))
    out += [f"  unreachable: {p}" for p in reach["failed"][:20]]
    if r["rejected_lines"]:
        out.append(f"rejected config lines: {len(r['rejected_lines'])}")
        out += [f"  {x['node']} line {x['line_no']}: {x['line']}  <- {x['message']}" for x in r["rejected_lines"]]
    else:
        out.append("rejected config lines: none")
    if r["warnings"]:
        out.append(f"warnings: {len(r['warnings'])}")
        out += [f"  {w}" for w in r["warnings"]]
    out.append(f"torn down in {r['teardown_s']} s (total {r['total_s']} s)")
    warm = r.get("warm_twins") or []
    host = r.get("warm_twins_host") or {}
    out.append(f"warm twins of this lab held by workers on this host: {len(warm)}"
               + "".join(f"\n  twin {w['twin_id']} (worker pid {w['owner_pid']}, {w.get('routers', '?')} routers, "
                         f"{w['memory_mb']} MB, {'in use' if w['leased'] else 'idle'}, {w['uses']} run(s), "
                         f"last used {w.get('last_used') or w.get('since')}, baseline "
                         f"{str(w['baseline_digest'])[:19]}…)" for w in warm))
    if host.get("twins"):
        out.append(f"warm twins on this host, all labs: {host['twins']} ({host['memory_mb']:g} MB: "
                   f"{', '.join(host['labs'])})")
    return "\n".join(out)
