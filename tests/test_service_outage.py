"""PostgreSQL or Redis down: the API answers 503 with a message, pages a 503 page, and both recover.

Real parts, none of them shared with other users of this machine: the server is a real daphne
process (as `manage.py serve` runs it); its database is this test's PostgreSQL database reached
through a TCP proxy the test owns (closing the proxy is the database going away, for the server:
connections refused, open ones reset), and its Redis (broker and channel layer) is a
`redis-server` the test starts on a spare port and stops.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from rest_framework.authtoken.models import Token

from aegis_base.services import roles_setup
from preflight import services
from preflight.models import PreflightRun

REPO = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.django_db(transaction=True),  # the server process must see the rows
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """A TCP forwarder to the database that the test can take down and bring back on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def stop(self) -> None:
        """The database goes away: no new connection, every open one reset."""
        if self.listener is not None:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept() (Linux)
            self.listener.close()
            self.listener = None
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Redis:
    def __init__(self, tmp: Path):
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def call(url: str, *, token: str = "", cookie: str = "", body: dict | None = None) -> tuple[int, dict, str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    if token:
        req.add_header("Authorization", f"Token {token}")
    if cookie:
        req.add_header("Cookie", cookie)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


@pytest.fixture
def stack(tmp_path):
    """An operator with a token and a session, the server, its database proxy and its Redis."""
    roles_setup()
    services.lab_sync()
    user = get_user_model().objects.create_user(username="olivia", password="olivia-pw-12345")
    user.groups.add(Group.objects.get(name="operator"))
    token = Token.objects.create(user=user).key
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    db = connection.settings_dict
    proxy = Proxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    proxy.start()
    redis = Redis(tmp_path)
    redis.start()
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@127.0.0.1:{proxy.port}/{db['NAME']}",
        REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
        CELERY_BROKER_URL=f"redis://127.0.0.1:{redis.port}/0",
        AEGIS_HOME=str(tmp_path / "home"),
        AEGIS_RUNS_DIR=str(tmp_path / "runs"),
        AEGIS_LABS_DIR=str(settings.AEGIS_LABS_DIR),
        AEGIS_RUN_DISPATCH="celery",
        AEGIS_DEBUG="0",
    )
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "aegis_site.asgi:application"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "cookie": f"sessionid={session.session_key}",
               "proxy": proxy, "redis": redis}
    finally:
        server.kill()  # our own server process; nothing of it needs a graceful end
        server.wait(20)
        proxy.stop()
        redis.stop()


def test_database_or_redis_down_is_a_503_with_a_message_and_both_recover(stack):
    # One server for both outages: a server start costs ~5 s of CI.
    url, token, cookie, proxy, redis = stack["url"], stack["token"], stack["cookie"], stack["proxy"], stack["redis"]
    # given a working server
    assert call(f"{url}/api/runs", token=token)[0] == 200
    assert call(f"{url}/preflight/", cookie=cookie)[0] == 200
    # when the database goes away
    proxy.stop()
    status, headers, body = call(f"{url}/api/runs", token=token)
    # then the API says 503, in JSON, naming the database, with Retry-After
    assert status == 503, body
    assert headers["Content-Type"] == "application/json"
    assert "database is unreachable" in json.loads(body)["detail"]
    assert int(headers["Retry-After"]) > 0
    # and a page (its session is in the database) is a 503 page, not a 500
    status, headers, body = call(f"{url}/preflight/", cookie=cookie)
    assert status == 503 and headers["Content-Type"].startswith("text/html")
    assert "Temporarily unavailable" in body and "database is unreachable" in body
    # when it is back, the same requests succeed again
    proxy.start()
    assert call(f"{url}/api/runs", token=token)[0] == 200
    assert call(f"{url}/preflight/", cookie=cookie)[0] == 200

    change = {"lab": "triangle", "title": "outage", "devices": {"r3": "ip route 10.42.0.0/24 Null0\n"},
            "backend": "simulator"}
    # when Redis (the task queue) is down and a change is submitted
    redis.stop()
    status, headers, text = call(f"{url}/api/preflight/run", token=token, body=change)
    # then 503 in JSON naming Redis; the run the request recorded is failed with the reason, not left queued
    assert status == 503, text
    assert "Redis" in json.loads(text)["detail"] and int(headers["Retry-After"]) > 0
    run = PreflightRun.objects.get(change__title="outage")
    assert run.status == "failed" and "task queue" in run.error
    # and reads that do not need Redis still work
    assert call(f"{url}/api/runs", token=token)[0] == 200
    # when Redis is back, the same submission is accepted and queued
    redis.start()
    status, _, text = call(f"{url}/api/preflight/run", token=token, body=change)
    assert status in (201, 202), text
    assert PreflightRun.objects.filter(change__title="outage", status="queued").count() == 1
