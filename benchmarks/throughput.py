"""Throughput of concurrent preflights: through real Celery workers, and through local twin agents.

    sudo DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://127.0.0.1:6379/N \\
        .venv/bin/python benchmarks/throughput.py [--k 1,2,4,8] [--modes celery,agent1,agent2]

For each concurrency K, K preflights of `labs/triangle` (a clean, declared change: r3 announces
a /24, ship_ready) are started at once and timed to the last one:

* celery: submitted through `services.run_start` (the web's path) onto the `twin` queue of one
  real `celery worker -c 8` process (prefork, root) on this host: each run is the whole job,
  netns twin, verdict, seal, PDF;
* agent1 / agent2: K threads each call `run_preflight` with the `http` backend against one, or
  two (round-robin) `manage.py twin_agent` processes on loopback (no sealing: the twin part).

Printed per K: runs/minute, p50/p95 run seconds, the host's memory high-water mark above the
idle level (MemTotal - MemAvailable, sampled every 0.25 s), and `uptime` load before and after.
Figures are printed, never asserted. Needs root, FRR, PostgreSQL and (for celery) Redis.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CHANGE = {"devices": {"r3": "ip route 10.99.0.0/24 Null0\nrouter bgp 65003\n address-family ipv4 unicast\n"
                             "  network 10.99.0.0/24\n"},
          "expect": {"prefixes_added": {"*": ["10.99.0.0/24"]}}}


def used_mb() -> int:
    info = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) // 1024


class MemoryPeak:
    def __init__(self) -> None:
        self.base = used_mb()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, used_mb())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.base


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def summary(mode: str, k: int, seconds: list[float], wall: float, mem: int, verdicts: list[str],
            load_before: str) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return (f"| {mode} | {k} | {60 * len(seconds) / wall:.1f} | {statistics.median(ordered):.1f} | {p95:.1f} | "
            f"{wall:.1f} | {mem} | {', '.join(sorted(set(verdicts)))} | {load_before} -> {load()} |")


# ---------------------------------------------------------------------- celery


def celery_mode(ks: list[int], tmp: Path) -> list[str]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")
    queue = f"aegis-throughput-{os.getpid()}"
    os.environ["AEGIS_TWIN_QUEUE"] = queue
    os.environ.setdefault("AEGIS_HOME", str(tmp / "home"))
    os.environ.setdefault("AEGIS_RUNS_DIR", str(tmp / "runs"))
    os.environ.setdefault("AEGIS_CAPACITY_LEDGER", str(tmp / "capacity.json"))
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from aegis_base.services import roles_setup
    from preflight import services
    from preflight.models import Lab, PreflightRun

    if not settings.CELERY_BROKER_URL:
        sys.exit("set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/11) for the celery mode")
    call_command("migrate", verbosity=0)
    roles_setup()
    services.lab_sync()
    user, _ = get_user_model().objects.get_or_create(username="bench-operator")
    user.groups.add(Group.objects.get(name="operator"))
    lab = Lab.objects.get(name="triangle")
    settings.AEGIS_RUN_DISPATCH = "celery"
    log = (tmp / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "aegis_site", "worker", "-Q", queue, "-c",
                               str(max(ks)), "--without-gossip", "--without-mingle", "-l", "info"],
                              cwd=REPO, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    rows = []
    try:
        time.sleep(5)  # the prefork pool comes up
        for k in ks:
            before = load()
            mem = MemoryPeak()
            t0 = time.monotonic()
            runs = [services.run_start(operator=user, submission=services.Submission(
                lab=lab, title=f"throughput K={k} #{i}", devices=CHANGE["devices"], expect=CHANGE["expect"],
                backend="netns", frameworks=["nist-800-53r5"])) for i in range(k)]
            pks = [r.pk for r in runs]
            while PreflightRun.objects.filter(pk__in=pks, status__in=["queued", "running"]).exists():
                if time.monotonic() - t0 > 1800:
                    raise SystemExit(f"K={k}: runs did not finish in 30 min; see {tmp / 'worker.log'}")
                time.sleep(0.5)
            wall = time.monotonic() - t0
            high = mem.stop()
            done = list(PreflightRun.objects.filter(pk__in=pks))
            seconds = [(r.finished - r.created).total_seconds() for r in done]
            rows.append(summary("celery", k, seconds, wall, high, [r.verdict or r.status for r in done], before))
            print(rows[-1], flush=True)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
        log.close()
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue, f"_kombu.binding.{queue}")
    return rows


# ---------------------------------------------------------------------- agents


def agent_mode(ks: list[int], agents: int, tmp: Path) -> list[str]:
    from preflight.core.change import change_from_parts
    from preflight.core.pipeline import run_preflight
    from twin.remote import RemoteBackend
    from twin.topology import load_lab

    token = secrets.token_urlsafe(24)
    token_file = tmp / "agent.token"
    token_file.write_text(token)
    procs, urls = [], []
    for _ in range(agents):
        proc = subprocess.Popen([sys.executable, str(REPO / "manage.py"), "twin_agent", "--listen", "127.0.0.1:0",
                                 "--token-file", str(token_file), "--budget-mb", "20000"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = ""
        while proc.stdout and "listening on" not in line:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("an agent did not start")
        threading.Thread(target=lambda p=proc: [None for _ in p.stdout or []], daemon=True).start()
        procs.append(proc)
        urls.append(f"http://{line.split('listening on ')[1].split()[0]}")
    lab = REPO / "labs" / "triangle"
    topology = load_lab(lab)
    change = change_from_parts(title="throughput", description="", devices=CHANGE["devices"],
                               expect=CHANGE["expect"], source="api", topology=topology)
    rows = []
    try:
        for k in ks:
            before = load()
            mem = MemoryPeak()
            seconds: list[float] = []
            verdicts: list[str] = []

            def one(i: int, seconds: list[float] = seconds, verdicts: list[str] = verdicts) -> None:
                t = time.monotonic()
                result = run_preflight(lab, change, backend=RemoteBackend(urls[i % agents], token=token),
                                       topology=topology)
                seconds.append(time.monotonic() - t)
                verdicts.append(result["verdict"])

            t0 = time.monotonic()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - t0
            rows.append(summary(f"agent{agents}", k, seconds, wall, mem.stop(), verdicts, before))
            print(rows[-1], flush=True)
    finally:
        for proc in procs:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(60)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", default="1,2,4,8", help="concurrency levels (comma-separated)")
    parser.add_argument("--modes", default="celery,agent1,agent2")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    print(f"throughput: labs/triangle ship_ready change, netns twins, {os.cpu_count()} CPUs, load {load()}")
    print("| mode | K | runs/min | p50 s | p95 s | wall s | memory high-water MB | verdicts | load before -> after |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory(prefix="aegis-throughput-") as tmp:
        for mode in args.modes.split(","):
            if mode == "celery":
                rows += celery_mode(ks, Path(tmp))
            elif mode.startswith("agent"):
                rows += agent_mode(ks, int(mode[5:] or 1), Path(tmp))
            else:
                raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
