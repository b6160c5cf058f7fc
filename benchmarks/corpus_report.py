"""Bring up every case of the real-world corpus (../shared/corpus) as a twin and report.

    sudo .venv/bin/python benchmarks/corpus_report.py [--corpus DIR] [--timeout S] [--only SUBSTR]
                                                      [--json-out FILE]

For each case: does it load, does it converge (and in how many seconds), how many sessions
and adjacencies came up, how many config lines FRR refused, how many sessions settled down.
Prints a markdown table (pasted into docs/twin.md) and, with --json-out, every lab_check report.
Cases run one after another; every twin is torn down before the next starts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.base import TopologyError, TwinError  # noqa: E402
from twin.labcheck import lab_check  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--timeout", type=float, default=150.0)
    p.add_argument("--only", default="", help="run only cases whose name contains this")
    p.add_argument("--json-out", type=Path)
    a = p.parse_args()
    if not a.corpus.is_dir():
        print(f"no corpus at {a.corpus}", file=sys.stderr)
        return 2
    cases = sorted(d for d in a.corpus.iterdir() if d.is_dir() and a.only in d.name)
    rows, reports = [], {}
    t_all = time.monotonic()
    print("| case | routers | loaded | converged | seconds | BGP up/total | OSPF full/total | BFD up/total "
          "| settled down | refused lines | reach ok/total | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        t0 = time.monotonic()
        try:
            r = lab_check(case, timeout=a.timeout)
        except (TopologyError, TwinError) as exc:
            reports[case.name] = {"error": str(exc)}
            print(f"| {case.name} | - | no: {str(exc)[:80]} | - | - | - | - | - | - | - | - | "
                  f"{time.monotonic() - t0:.1f} |", flush=True)
            continue
        reports[case.name] = r
        b, o, f, re_ = r["bgp_sessions"], r["ospf_adjacencies"], r["bfd_peers"], r["reachability"]
        row = (f"| {case.name} | {r['nodes']} | yes | {'yes' if r['converged'] else 'NO'} | {r['convergence_s']} "
               f"| {b['established']}/{b['total']} | {o['full']}/{o['total']} | {f['up']}/{f['total']} "
               f"| {len(r['down'])} | {len(r['rejected_lines'])} | {re_['ok']}/{re_['total']} "
               f"| {time.monotonic() - t0:.1f} |")
        rows.append(r)
        print(row, flush=True)
    conv = sum(1 for r in rows if r["converged"])
    print(f"\n{len(cases)} cases, {len(rows)} loaded, {conv} converged, "
          f"{sum(len(r['rejected_lines']) for r in rows)} refused lines, {time.monotonic() - t_all:.0f} s in all")
    if a.json_out:
        a.json_out.write_text(json.dumps(reports, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
