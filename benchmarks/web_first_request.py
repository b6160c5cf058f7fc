"""CPU of a freshly started web worker's first pages, with and without the warm-up at start.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/aegis_web_bench \
        .venv/bin/python benchmarks/web_first_request.py [--rounds 5]

Seeds the same queue as `benchmarks/web_load.py` (its own database, created if missing), then
starts `--rounds` fresh Python processes per mode. Each builds the HTTP application exactly as a
web worker does (`django.setup()`, then `aegis_site.asgi_http.DjangoHTTP`, which warms the
worker up unless told not to: `aegis_site/warmup.py`) and serves, in process and one after the
other, the approver queue, a run page, then both again, through the same handler the server
uses. Printed per mode: the CPU seconds of the start (setup + application) and of each request
(`time.process_time()`), medians over the rounds, and the load average. Figures, never asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(warm: bool, pages: list[tuple[str, str, str]]) -> dict:
    cpu0 = time.process_time()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")
    import django

    django.setup(set_prefix=False)
    from aegis_site.asgi_http import DjangoHTTP, _environ

    app = DjangoHTTP(warm=warm)
    out: dict = {"start_cpu_s": time.process_time() - cpu0, "requests": []}
    for name, path, cookie in pages + pages:
        scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "http_version": "1.1",
                 "scheme": "http", "server": ("127.0.0.1", 8088), "client": ("127.0.0.1", 5000),
                 "headers": [(b"host", b"127.0.0.1:8088"), (b"cookie", f"sessionid={cookie}".encode())]}
        t = time.process_time()
        status, _, body, _ = app._run(_environ(scope, io.BytesIO()))
        out["requests"].append({"page": name, "status": status, "cpu_s": time.process_time() - t,
                                "bytes": len(body)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", choices=["warm", "cold"])
    ap.add_argument("--pages")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "warm", json.loads(args.pages))))
        return 0
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL=postgres://... is required (a database of its own; created if missing)")
    from web_load import database_ensure, seed

    database_ensure(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")
    import django

    django.setup(set_prefix=False)
    with open(os.devnull, "w") as devnull:
        sys.stdout, saved = devnull, sys.stdout
        try:
            seeded = seed(50, 2)
        finally:
            sys.stdout = saved
    pages = [seeded["people"][0][0], seeded["people"][1][0]]
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    for mode in ("cold", "warm"):
        rounds = []
        for _ in range(args.rounds):
            proc = subprocess.run([sys.executable, __file__, "--child", mode, "--pages", json.dumps(pages)],
                                  capture_output=True, text=True, check=True, cwd=ROOT)
            rounds.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        bad = [r for x in rounds for r in x["requests"] if r["status"] != 200]
        if bad:
            raise SystemExit(f"a page did not answer 200: {bad[0]}")
        start = statistics.median(x["start_cpu_s"] for x in rounds)
        per = [statistics.median(x["requests"][i]["cpu_s"] for x in rounds) for i in range(len(pages) * 2)]
        label = "warm-up at start" if mode == "warm" else "no warm-up"
        shown = ", ".join(f"{'first' if i < len(pages) else 'second'} {pages[i % len(pages)][0]} "
                          f"{per[i] * 1000:.1f} ms" for i in range(len(per)))
        print(f"{label}: start {start * 1000:.0f} ms CPU; {shown} (median of {args.rounds})")
    print(f"load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
