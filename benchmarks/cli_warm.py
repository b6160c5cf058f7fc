"""`manage.py preflight --warm` against a `manage.py twin_pool serve` holder, from the command line.

    sudo DATABASE_URL=... .venv/bin/python benchmarks/cli_warm.py [--lab labs/triangle]
        [--change labs/triangle/changes/ship_ready.yml] [--runs 3] [--failures none]

Starts a holder on a socket of its own (a temporary AEGIS_TWIN_POOL_SOCKET), then times whole
CLI invocations (process start, Django, the run, the seal): one without --warm (cold, the
CLI's own twin), then `--runs` with --warm (the first is the holder's first run of the lab,
cold; the rest take its warm twin). Then stops the holder and checks its twins are gone.
Printed: seconds per invocation and `CLI: cold N s, warm N s (median of K)`. Never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "manage.py", "preflight", *args, "--json", "--no-seal"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    seconds = time.monotonic() - t0
    try:
        doc = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        doc = {"error": (done.stderr or done.stdout)[-400:]}
    return seconds, doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default="labs/triangle")
    parser.add_argument("--change", default="labs/triangle/changes/ship_ready.yml")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--failures", default="none")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="aegis-cliwarm-") as tmp:
        env = {**os.environ, "AEGIS_TWIN_POOL_SOCKET": f"{tmp}/pool.sock"}
        holder = subprocess.Popen([sys.executable, "manage.py", "twin_pool", "serve"], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            print(holder.stdout.readline().strip(), flush=True)
            common = [args.lab, "--change", args.change, "--failures", args.failures]
            cold_s, doc = cli(common, env)
            print(f"cold (no --warm): {cold_s:.1f} s, verdict {doc.get('verdict')}, warm {doc.get('twin', {}).get('warm')}",
                  flush=True)
            warm = []
            for i in range(args.runs):
                s, doc = cli([*common, "--warm"], env)
                used = doc.get("twin", {}).get("warm")
                print(f"--warm #{i + 1}: {s:.1f} s, verdict {doc.get('verdict')}, warm twin {used}"
                      f"{'' if 'error' not in doc else ' ' + doc['error']}", flush=True)
                if used:
                    warm.append(s)
            status = subprocess.run([sys.executable, "manage.py", "twin_pool", "status"], cwd=REPO, env=env,
                                    capture_output=True, text=True).stdout.strip()
            print(status, flush=True)
        finally:
            holder.terminate()
            out, _ = holder.communicate(timeout=120)
            print(out.strip().splitlines()[-1] if out.strip() else "holder printed nothing")
    print(f"load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if warm:
        print(f"CLI: cold {cold_s:.1f} s, warm {statistics.median(warm):.1f} s (median of {len(warm)} --warm runs "
              "on the holder's warm twin; whole invocations)")
    else:
        print(f"CLI: cold {cold_s:.1f} s, no run was warm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
