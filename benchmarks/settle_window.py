"""What the timer-aware settle window adds, per example change of the bundled labs.

    sudo .venv/bin/python benchmarks/settle_window.py [--labs triangle,fabric,campus,bfd] [--markdown]

For every example change in `labs/<lab>/changes/` that gets past the static checks, the window
`preflight.core.settle.settle_window` computes from the lab's configs (pure, no twin), then the
real pipeline on one twin per lab (shared between the lab's changes: each run's verified
rollback returns it to the baseline): `converge_change` wall seconds and the part of it that
was the window's extra wait (`result.settle.waited_s`: time waited after the twin had already
settled). Figures are printed, never asserted. Needs root and FRR.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preflight.core.change import ChangeError, change_load  # noqa: E402
from preflight.core.guards import GuardRejection, precheck  # noqa: E402
from preflight.core.pipeline import run_preflight  # noqa: E402
from preflight.core.settle import settle_window  # noqa: E402
from preflight.core.static import static_check  # noqa: E402
from twin.lend import LentBackend  # noqa: E402
from twin.netns import NetnsBackend  # noqa: E402
from twin.topology import load_lab  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labs", default="triangle,fabric,campus,bfd")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (the netns twin)", file=sys.stderr)
        return 2
    rows = []
    for lab in args.labs.split(","):
        lab_dir = REPO / "labs" / lab
        topology = load_lab(lab_dir)
        changes = []
        for path in sorted((lab_dir / "changes").glob("*.yml")):
            try:
                change = change_load(path.read_text(), topology)
                precheck(change, topology)
            except (ChangeError, GuardRejection):
                continue
            if any(f["severity"] == "error" for f in static_check(change, topology)):
                continue
            changes.append((path.stem, change))
        twin = NetnsBackend().spawn(topology, None)
        try:
            for name, change in changes:
                window = settle_window(topology, change, args.timeout)
                result = run_preflight(lab_dir, change, backend=LentBackend(twin), topology=topology,
                                       converge_timeout=args.timeout)
                settle = result.get("settle") or {}
                rows.append({"lab": lab, "change": name, "timer": window.timer or "-",
                             "window_s": window.seconds, "source": window.source or "-",
                             "converge_change_s": result["timings"].get("converge_change"),
                             "waited_s": settle.get("waited_s"), "verdict": result["verdict"]})
                print(rows[-1], file=sys.stderr, flush=True)
        finally:
            twin.teardown()
    load = os.getloadavg()
    if args.markdown:
        print(f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n")
        print("| lab | change | timer | window s | set by | converge_change s | of it, window wait s | verdict |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['lab']} | {r['change']} | {r['timer']} | {r['window_s']:g} | {r['source']} | "
                  f"{r['converge_change_s']} | {r['waited_s']} | {r['verdict']} |")
    else:
        for r in rows:
            print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
