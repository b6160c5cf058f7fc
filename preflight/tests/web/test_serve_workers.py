"""`manage.py serve --workers 2` for real: gunicorn + 2 uvicorn workers on the test database.

It starts, answers pages, carries a websocket event written by another process (channels-redis),
runs a submitted run in serve's own process only (the run relay), and stops on SIGTERM with no
process left. Plus the refusals that need no server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from evidence.models import Bundle
from preflight import services, worker
from preflight.models import PreflightRun
from preflight.tests.web.fixtures import REPO, SHIP_READY, child_env

REDIS = os.environ.get("AEGIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/6")


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _tree(root: int) -> list[int]:
    """The process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_several_workers_without_redis_are_refused(settings):
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="needs REDIS_URL"):
        call_command("serve", "--workers", "2", "--no-migrate")


def test_a_web_worker_that_relays_runs_never_starts_the_twin_worker(settings):
    settings.AEGIS_RUN_DISPATCH = "relay"
    with pytest.raises(RuntimeError, match="never runs a twin"):
        worker.submit(1)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_serve_with_two_workers_pages_websocket_relay_and_a_clean_stop(
    settings, tmp_path, operator, lab
):
    if not _redis_up():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    from rest_framework.authtoken.models import Token
    from websockets.sync.client import connect

    # This process publishes events to the same Redis as the server's workers.
    settings.REDIS_URL = REDIS
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS]}}
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = child_env(tmp_path, REDIS_URL=REDIS, AEGIS_WARM_TWINS_MB="0")
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-migrate", "--port", str(port), "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "serve did not answer in 90 s:\n" + log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/accounts/login/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pids = _tree(proc.pid)
        assert len(pids) >= 4, f"serve, gunicorn and two workers expected, found {pids}"

        # Pages, with the operator's session, from whichever worker answers.
        client = Client()
        client.force_login(operator)
        cookie = client.cookies["sessionid"].value
        token = Token.objects.create(user=operator)
        answer = httpx.post(
            f"{base}/api/preflight/run",
            json={"lab": lab.name, "title": "relayed", "backend": "simulator", **SHIP_READY},
            headers={"Authorization": f"Token {token.key}"},
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        run = PreflightRun.objects.get(run_id=answer.json()["run_id"])
        deadline = time.monotonic() + 60
        while not run.done:
            assert time.monotonic() < deadline, f"run still {run.status}:\n" + log_path.read_text()[-3000:]
            time.sleep(0.3)
            run.refresh_from_db()
        assert run.status == "finished" and run.verdict == "ship_ready", (run.status, run.error)
        started = run.events.get(step="run", status="started")
        # Executed by serve's own process (the one that may run twins), not by a web worker.
        assert started.data["pid"] == proc.pid, (started.data, proc.pid, pids)
        for _ in range(6):
            page = httpx.get(f"{base}/preflight/runs/{run.run_id}/", cookies={"sessionid": cookie}, timeout=30)
            assert page.status_code == 200 and run.run_id in page.text
        # A streamed download (FileResponse through aegis_site/asgi_http.py) arrives whole.
        sealed = httpx.get(f"{base}/preflight/runs/{run.run_id}/bundle.json", cookies={"sessionid": cookie}, timeout=30)
        assert sealed.status_code == 200
        assert sealed.content == Bundle.objects.get(run_id=run.run_id).bundle_json.encode("ascii")

        # A websocket held by a worker receives an event this process writes.
        with connect(
            f"ws://127.0.0.1:{port}/ws/runs/{run.run_id}/?after={run.last_seq}",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"sessionid={cookie}"},
            open_timeout=30,
        ) as ws:
            time.sleep(0.5)  # the consumer has joined the run's group
            event = services.event_append(run=run, step="note", status="info", message="from another process")
            while True:
                message = json.loads(ws.recv(timeout=15))
                if message.get("event", {}).get("seq") == event.seq:
                    break
            assert message["event"]["message"] == "from another process"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            code = "killed"
        log.close()
    assert code == 0, log_path.read_text()[-3000:]
    time.sleep(0.5)
    left = [pid for pid in pids if _alive(pid)]
    assert not left, f"processes left after stop: {left}"
    assert "stopped" in log_path.read_text()
