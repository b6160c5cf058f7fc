"""Test helpers for the twin agent: a live agent on loopback, and a fault-injecting proxy in front of it.

The agent is the real one (twin/agent.py, real HTTP on 127.0.0.1). The proxy is a real HTTP
server too: it forwards each request to the agent unchanged and, for the one operation under
test, spoils the answer the way a broken network or agent would (malformed, partial, slow,
oversized, out of order, dropped). Only loopback is ever listened on or connected to.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from twin.agent import AgentConfig, AgentHTTPServer, TwinAgent

TOKEN = "test-token-" + "0123456789abcdef"


@dataclass
class LiveAgent:
    agent: TwinAgent
    server: AgentHTTPServer
    thread: threading.Thread
    url: str
    requests: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.agent.close()
        self.thread.join(10)


def agent_start(backend: Any, *, port: int = 0, allow: list[str] | None = None, budget_mb: int = 100_000,
                lease_s: float = 30.0, token: str = TOKEN, tls: Any = None) -> LiveAgent:
    agent = TwinAgent(AgentConfig(token=token, allow=allow or ["127.0.0.0/8", "::1/128"], budget_mb=budget_mb,
                                  lease_s=lease_s, expire_every_s=0.1), backend)
    server = AgentHTTPServer(("127.0.0.1", port), agent, tls=tls)
    agent.start()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    return LiveAgent(agent, server, thread, f"{scheme}://127.0.0.1:{server.server_address[1]}")


@contextmanager
def live_agent(backend: Any, **kwargs: Any) -> Iterator[LiveAgent]:
    la = agent_start(backend, **kwargs)
    try:
        yield la
    finally:
        la.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll a predicate (no fixed sleeps in assertions): the machine is shared and slow."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------------- the faulty proxy

FAULTS = ("malformed", "partial", "slow", "oversized", "out_of_order", "dropped", "schema", "error_500")


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._forward("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._forward("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._forward("DELETE")

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "x-request-id",
                                                                         "content-type")}
        proxy = self.server
        spoil = proxy.fault if proxy.matches(method, self.path) else None
        if spoil == "dropped":
            # Forward (so the agent did the work), then hang up without a word.
            httpx.request(method, proxy.upstream + self.path, content=body, headers=headers, timeout=120)
            self.close_connection = True
            self.connection.shutdown(2)
            return
        resp = httpx.request(method, proxy.upstream + self.path, content=body, headers=headers, timeout=120)
        data = resp.content
        status = resp.status_code
        if spoil == "malformed":
            data = b"{\"schema\": \"aegis.twin-agent/v1\", oops" + data[:40]
        elif spoil == "schema":
            doc = json.loads(data)
            for key in ("result", "snapshot", "lease", "config", "reachable", "twin_id"):
                doc.pop(key, None)
            data = json.dumps(doc).encode()
        elif spoil == "out_of_order":
            doc = json.loads(data)
            doc["request_id"] = "0" * 16  # the answer to some other request
            data = json.dumps(doc).encode()
        elif spoil == "error_500":
            status, data = 500, b"<html>Internal Server Error</html>"
        if spoil == "slow":
            time.sleep(proxy.slow_s)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if spoil == "oversized":
            self.send_header("Content-Length", str(proxy.oversized_bytes))
            self.end_headers()
            try:
                chunk = b" " * 65536
                for _ in range(proxy.oversized_bytes // len(chunk) + 1):
                    self.wfile.write(chunk)
            except OSError:
                pass
            self.close_connection = True
            return
        if spoil == "partial":
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FaultProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, fault: str, op: str, *, slow_s: float = 3.0,
                 oversized_bytes: int = 4 * 1024 * 1024, times: int = 1) -> None:
        assert fault in FAULTS, fault
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.fault = fault
        self.op = op  # "spawn", or a twin operation such as "snapshot"
        self.slow_s = slow_s
        self.oversized_bytes = oversized_bytes
        self.times = times
        self.fired = 0
        self._lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def matches(self, method: str, path: str) -> bool:
        hit = (self.op == "spawn" and method == "POST" and path == "/v1/twins") or \
              (self.op == "teardown" and method == "DELETE") or path.endswith("/" + self.op)
        with self._lock:
            if hit and self.fired < self.times:
                self.fired += 1
                return True
        return False


@contextmanager
def fault_proxy(upstream: str, fault: str, op: str, **kwargs: Any) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, fault, op, **kwargs)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
