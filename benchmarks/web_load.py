"""Web latency under load, server CPU per page and websocket event delay, on loopback against a real server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/aegis_web_bench REDIS_URL=redis://127.0.0.1:6379/5 \
        .venv/bin/python benchmarks/web_load.py [--clients 50] [--requests 2000] [--sockets 10] [--events 200]

1. Seeds a queue of runs that need approval (one real simulator run, sealed, cloned 49 times)
   in its own database (created if missing), owned by `--clients`/2 operators, and as many
   approvers: every client is a person of their own, with their own account and session.
2. Starts the server on a free port (stopped by PID at the end): `manage.py serve --workers N`
   (`--workers`, default 2: gunicorn + uvicorn workers) as a site runs it, or `--server daphne`,
   one bare daphne process (the baseline of issues 5 and 13).
3. `--clients` concurrent HTTP clients, `--requests` in all: half are approvers fetching the
   approver queue, half operators fetching their own run page, each pausing `--think` seconds
   on average between requests as a person does (`--think 0`: back-to-back, a saturation test),
   and arriving after such a pause too (50 people do not click at the same millisecond);
   every web worker has served each page before the clock starts;
   prints p50/p95/p99/max per page, the request rate and the server's CPU per request (the
   whole process tree), with the load average before and after.
   Then the server CPU per page, page by page (`--cpu-requests` each, 4 clients back to back):
   approver queue, run page, runs list, bundles list and their API counterparts.
4. `--sockets` websocket clients follow one run; this process writes `--events` events
   (each committed, then published through channels-redis); prints the delay from just
   before the event's commit to its arrival in each client.

Targets (issues 5, 13): page p95 <= 100 ms at 50 clients (think 1 s) on 2 cores, server CPU
<= 10 ms per page; event delay <= 250 ms.
REDIS_URL is required: the events cross from this process to the server through Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def database_ensure(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname=%s", [name]).fetchone():
            conn.execute(f'create database "{name}"')


def seed(queue_size: int, people: int) -> dict:
    """Users, one sealed simulator run that needs approval, cloned to fill the queue.

    `people` approvers and `people` operators, each with a session of their own: the runs are
    spread over the operators (each views their own), every approver sees the whole queue.
    """
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.test import Client
    from guardian.shortcuts import assign_perm

    from preflight import services
    from preflight.models import ChangeRequest, Lab, PreflightRun, RunEvent

    call_command("migrate", interactive=False, verbosity=0)
    call_command("setup_roles", verbosity=0, stdout=io.StringIO())
    services.lab_sync()
    User = get_user_model()
    operators, approvers_ = [], []
    for role, users in (("operator", operators), ("approver", approvers_)):
        for k in range(people):
            user, _ = User.objects.get_or_create(username=f"bench-{role}" + (f"-{k}" if k else ""))
            user.groups.add(Group.objects.get(name=role))
            users.append(user)
    operator = operators[0]
    lab = Lab.objects.get(name="triangle")
    ours = PreflightRun.objects.filter(change__operator__in=operators)
    ours.filter(approvals__isnull=True).exclude(verdict="needs_approval").delete()
    existing = ours.filter(verdict="needs_approval").count()
    if existing == 0:
        settings.AEGIS_RUN_DISPATCH = "inline"
        from django.db import transaction

        with transaction.atomic():
            first = services.run_start(
                operator=operator,
                submission=services.Submission(
                    lab=lab,
                    title="Bench: route to r1's loopback via r2",
                    backend="simulator",
                    # An effect beyond the intent (the fixtures' NEEDS_APPROVAL): medium risk.
                    devices={"r3": "ip route 10.255.0.1/32 10.0.23.0\n"},
                ),
            )
        first.refresh_from_db()
        assert first.verdict == "needs_approval", first.error
        existing = 1
    # The real simulator run (not a clone): the clones copy it, the websocket test follows it.
    template = (
        ours.filter(verdict="needs_approval").exclude(change__title__startswith="Bench clone ").order_by("pk").first()
    )
    if not template.blast:
        from preflight.selectors import blast_radius

        template.blast = blast_radius(template.result)
        template.save(update_fields=["blast"])
        ours.update(blast=template.blast)
    events = list(template.events.order_by("seq"))
    approvers = Group.objects.get(name="approver")
    for i in range(existing, queue_size):
        change = ChangeRequest.objects.create(
            operator=operator,
            lab=lab,
            title=f"Bench clone {i}",
            devices=template.change.devices,
            frameworks=template.change.frameworks,
        )
        run = PreflightRun.objects.create(
            change=change,
            backend=template.backend,
            status="finished",
            verdict=template.verdict,
            risk_tier=template.risk_tier,
            risk_score=template.risk_score,
            result=template.result,
            last_seq=template.last_seq,
            bundle_digest=template.bundle_digest,
            blast=template.blast,
        )
        RunEvent.objects.bulk_create(
            [
                RunEvent(run=run, seq=e.seq, step=e.step, status=e.status, message=e.message, data=e.data)
                for e in events
            ]
        )
        assign_perm("preflight.view_preflightrun", approvers, run)
    # The clones go round the operators (the template run stays bench-operator's); idempotent, so
    # a database seeded for fewer people is brought up to this many.
    clones = ChangeRequest.objects.filter(title__startswith="Bench clone ").order_by("pk")
    own_run: dict[str, str] = {operator.username: template.run_id}
    for i, change in enumerate(clones, start=1):
        owner = operators[i % people]
        if change.operator_id != owner.pk:
            change.operator = owner
            change.save(update_fields=["operator"])
        for run in change.runs.all():
            assign_perm("preflight.view_preflightrun", owner, run)
            own_run.setdefault(owner.username, run.run_id)
    if len(own_run) < people:
        raise SystemExit(
            f"--queue {queue_size} is too short: each of the {people} operators needs a run of their own"
        )
    cookies = {}
    auditor, _ = User.objects.get_or_create(username="bench-auditor")
    auditor.groups.add(Group.objects.get(name="auditor"))
    for user in (*operators, *approvers_, auditor):
        client = Client()
        client.force_login(user)
        cookies[user.username] = client.cookies["sessionid"].value
    return {
        "run_id": template.run_id,
        "run_pk": template.pk,
        "cookies": cookies,
        # each person: (page name, path, their session cookie)
        "people": [
            [("approver queue", "/promote/queue/", cookies[a.username]) for a in approvers_],
            [("run page", f"/preflight/runs/{own_run[o.username]}/", cookies[o.username]) for o in operators],
        ],
        "queue": PreflightRun.objects.filter(verdict="needs_approval", approvals__isnull=True).count(),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report CPU per request: a figure
    that holds when other work shares the machine, unlike wall-clock latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(root: int) -> list[int]:
    """The process and all its descendants (the web workers of `serve --workers N`)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def tree_cpu_seconds(root: int) -> float:
    total = 0.0
    for pid in tree_pids(root):
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError):
            pass  # gone meanwhile
    return total


def server_start(port: int, server: str, workers: int) -> subprocess.Popen:
    """`daphne` alone (the issue-5 baseline), or `manage.py serve --workers N` as a site starts it."""
    log = open(os.environ.get("AEGIS_BENCH_LOG", "/tmp/aegis-web-bench-server.log"), "w")  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    if server == "daphne":
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "aegis_site.asgi:application"]
    else:
        argv = [
            sys.executable, "manage.py", "serve", "--no-migrate", "--bind", "127.0.0.1", "--port", str(port),
            "--workers", str(workers),
        ]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    import httpx

    while time.monotonic() < deadline:  # the socket is the master's: wait for workers to answer
        try:
            if httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5).status_code == 200:
                time.sleep(2.0 if workers > 1 else 0)  # every worker booted, not only the first
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start; see the log")


def server_stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


async def cpu_per_page(base: str, root_pid: int, pages: list[tuple[str, str, str]], n: int) -> dict[str, float]:
    """Server CPU (the whole process tree) per page, one page at a time, 4 clients back to back."""
    import httpx

    out = {}
    for name, path, cookie in pages:
        queue = iter(range(n))

        async def loop(path=path, cookie=cookie, queue=queue) -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                for _ in queue:
                    answer = await client.get(path, cookies={"sessionid": cookie})
                    if answer.status_code != 200:
                        raise SystemExit(f"{path}: {answer.status_code}")

        async with httpx.AsyncClient(base_url=base) as client:  # warm every worker a little
            for _ in range(8):
                await client.get(path, cookies={"sessionid": cookie})
        before = tree_cpu_seconds(root_pid)
        await asyncio.gather(*(loop() for _ in range(4)))
        out[name] = (tree_cpu_seconds(root_pid) - before) * 1000 / n
    return out


async def http_load(
    base: str, seeded: dict, clients: int, total: int, think: float, *, warm: bool = False
) -> dict[str, list[float]]:
    """`clients` people, each with their own account, session and connection: even ones approvers
    reading the queue, odd ones operators reading their own run page."""
    import ssl

    import httpx

    approvers, operators = seeded["people"]
    people = [(approvers, operators)[n % 2][n // 2] for n in range(clients)]
    times: dict[str, list[float]] = {"approver queue": [], "run page": []}
    failures: list[str] = []
    counter = iter(range(total))
    tls = ssl.create_default_context()  # one for all clients: each new one costs ~20 ms of CPU here

    async def person(name: str, path: str, cookie: str, requests, timed: bool) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30, verify=tls, cookies={"sessionid": cookie}) as client:
            if timed and think:
                # People arrive as they click later on: after a pause like the one between pages.
                await asyncio.sleep(random.uniform(0, 2 * think))
            for _ in requests:
                started = time.perf_counter()
                answer = await client.get(path)
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    failures.append(f"{path}: {answer.status_code}")
                if timed:
                    times[name].append(elapsed * 1000)
                    if think:
                        # A person reads the page before the next click: uniform 0..2x the mean think time.
                        await asyncio.sleep(random.uniform(0, 2 * think))

    if warm:
        # Not timed, and before the CPU count starts: every web worker (and a few of its threads)
        # has served both pages, as on a site that has been up for a while; a freshly started
        # worker compiles templates and opens connections on its first requests.
        await asyncio.gather(*(person(*people[n], range(10), False) for n in range(min(clients, 8))))
    else:
        await asyncio.gather(*(person(*people[n], counter, True) for n in range(clients)))
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[:3]}")
    return times


async def ws_client(
    host: str,
    port: int,
    path: str,
    cookie: str,
    arrivals: dict[int, float],
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """A minimal RFC 6455 client (text frames only): the benchmark needs no extra package."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n"
            f"Cookie: sessionid={cookie}\r\n\r\n"
        ).encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in status.split(b"\r\n", 1)[0]:
        raise SystemExit(f"websocket refused: {status[:80]!r}")
    ready.set()
    while not stop.is_set():
        try:
            head = await asyncio.wait_for(reader.readexactly(2), timeout=0.5)
        except TimeoutError:
            continue
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        if head[0] & 0x0F == 1:
            message = json.loads(payload)
            arrivals.setdefault(message["event"]["seq"], time.perf_counter())
    writer.close()


async def ws_delay(host: str, port: int, seeded: dict, sockets: int, events: int) -> list[float]:
    from asgiref.sync import sync_to_async

    from preflight import services
    from preflight.models import PreflightRun

    run = await sync_to_async(PreflightRun.objects.get)(pk=seeded["run_pk"])
    start_seq = run.last_seq
    arrivals: list[dict[int, float]] = [{} for _ in range(sockets)]
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(sockets)]
    path = f"/ws/runs/{run.run_id}/?after={start_seq}"
    tasks = [
        asyncio.create_task(
            ws_client(host, port, path, seeded["cookies"]["bench-operator"], arrivals[i], readies[i], stop)
        )
        for i in range(sockets)
    ]
    await asyncio.gather(*(r.wait() for r in readies))
    await asyncio.sleep(0.5)
    sent: dict[int, float] = {}
    append = sync_to_async(services.event_append, thread_sensitive=True)
    for i in range(events):
        before_commit = time.perf_counter()
        event = await append(run=run, step="bench", status="info", message=f"bench event {i}")
        sent[event.seq] = before_commit
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*tasks)
    delays = []
    missing = 0
    for got in arrivals:
        for seq, t0 in sent.items():
            if seq in got:
                delays.append((got[seq] - t0) * 1000)
            else:
                missing += 1
    if missing:
        print(f"  {missing} event deliveries missing")
    return delays


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--queue", type=int, default=50, help="runs waiting in the approver queue")
    p.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="mean seconds a client waits between requests (0: closed loop, back-to-back)",
    )
    p.add_argument("--sockets", type=int, default=10)
    p.add_argument("--events", type=int, default=200)
    p.add_argument(
        "--server",
        choices=("serve", "daphne"),
        default="serve",
        help="serve: `manage.py serve --workers N` as a site runs it; daphne: one bare daphne (the old baseline)",
    )
    p.add_argument("--workers", type=int, default=2, help="web worker processes for --server serve")
    p.add_argument("--cpu-requests", type=int, default=200, help="requests per page for the CPU-per-page table")
    args = p.parse_args()
    db_url = os.environ.get("DATABASE_URL", "")
    if not db_url.startswith("postgres") or not os.environ.get("REDIS_URL"):
        raise SystemExit(
            "set DATABASE_URL (PostgreSQL, a database of its own) and REDIS_URL; see the docstring"
        )
    database_ensure(db_url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")
    os.environ.setdefault("AEGIS_HOME", "/tmp/aegis-web-bench")
    os.environ.setdefault("AEGIS_RUNS_DIR", "/tmp/aegis-web-bench/runs")
    import django

    django.setup()
    seeded = seed(args.queue, max(1, (args.clients + 1) // 2))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workers = 1 if args.server == "daphne" else args.workers
    described = "one bare daphne process" if args.server == "daphne" else f"manage.py serve --workers {workers}"
    uptime = Path("/proc/loadavg").read_text().split()[:3]
    proc = server_start(port, args.server, workers)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(http_load(base, seeded, args.clients, 0, 0, warm=True))
        load_before = os.getloadavg()[0]
        cpu_before = tree_cpu_seconds(proc.pid)
        started = time.perf_counter()
        times = asyncio.run(http_load(base, seeded, args.clients, args.requests, args.think))
        wall = time.perf_counter() - started
        cpu_ms = (tree_cpu_seconds(proc.pid) - cpu_before) * 1000 / args.requests
        print(
            f"HTTP: {args.requests} requests, {args.clients} concurrent clients ({(args.clients + 1) // 2} approvers, "
            f"{args.clients // 2} operators, a session each; think time {args.think} s mean), "
            f"{described}, {os.cpu_count()} cores, {seeded['queue']} runs in the queue; "
            f"{args.requests / wall:.0f} req/s; server CPU {cpu_ms:.1f} ms per request; "
            f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
            f"(uptime at start: {' '.join(uptime)})"
        )
        print("| page | requests | p50 ms | p95 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|---|")
        for name, values in times.items():
            print(
                f"| {name} | {len(values)} | {statistics.median(values):.0f} | {pct(values, 95):.0f} | "
                f"{pct(values, 99):.0f} | {max(values):.0f} |"
            )
        run_id = seeded["run_id"]
        cookie = seeded["cookies"]
        pages = [
            ("approver queue", "/promote/queue/", cookie["bench-approver"]),
            ("run page", f"/preflight/runs/{run_id}/", cookie["bench-operator"]),
            ("runs list (start page)", "/preflight/", cookie["bench-operator"]),
            ("bundles list", "/evidence/bundles/", cookie["bench-auditor"]),
            ("API approval queue", "/api/approvals/queue", cookie["bench-approver"]),
            ("API run", f"/api/runs/{run_id}", cookie["bench-operator"]),
            ("API runs", "/api/runs", cookie["bench-operator"]),
            ("API bundles", "/api/bundles", cookie["bench-auditor"]),
        ]
        cpu = asyncio.run(cpu_per_page(base, proc.pid, pages, args.cpu_requests))
        print(
            f"Server CPU per page ({args.cpu_requests} requests each, 4 clients back to back, "
            f"whole server process tree; load average now {os.getloadavg()[0]:.1f})"
        )
        print("| page | CPU ms per page |\n|---|---|")
        for name, ms in cpu.items():
            print(f"| {name} | {ms:.1f} |")
        delays = asyncio.run(ws_delay("127.0.0.1", port, seeded, args.sockets, args.events))
        print(
            f"Websocket: {args.events} events x {args.sockets} clients, channels-redis; delay from just "
            "before commit to arrival"
        )
        print(
            f"| deliveries | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|\n"
            f"| {len(delays)} | {statistics.median(delays):.1f} | {pct(delays, 95):.1f} | {pct(delays, 99):.1f} | "
            f"{max(delays):.1f} |"
        )
    finally:
        server_stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
