"""The warm-twin holder for the command line: `manage.py twin_pool serve` and `preflight --warm`.

A CLI preflight is a short-lived process: a twin it kept would die with it. The holder is a
long-lived process (root, like any twin worker) with one warm-twin pool (twin/pool.py). A
`preflight --warm` records its run as always (row, events, audit), then hands the run's id to
the holder over a unix socket; the holder executes that run (`run_execute`, the one way every
run goes) with its pool and streams each step back, so the CLI prints and exits as it would
have inline. Result, seal and files are the same; the run's events say which process ran it.

Safety:

* The socket is the holder's alone: mode 0600, and each caller's uid is checked
  (SO_PEERCRED): only root or the holder's own user. A request names a run id only; the
  holder executes only a run that is still queued and was submitted with `--warm`.
* Concurrent runs never share a twin (the pool leases each twin to one run); a twin whose
  rollback is not proven equal to its baseline is torn down, and a lab whose files changed
  gets a fresh twin (both by the pool).
* A caller that goes away (Ctrl-C, killed) interrupts its run at the next step, as Ctrl-C does
  inline: the run is failed and its twin torn down (kept only if the rollback was already proven).
* When the holder stops (SIGTERM, SIGINT) it lets the runs in progress finish, then tears
  down every twin it holds. If it is killed, its twins' run records name it as their owner,
  and the reaper (`twin_reap`, and every AEGIS process at start) removes them.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any

from django.db import close_old_connections, connection

from preflight.models import PreflightRun
from preflight.pool_client import _answers, _read_line, _send, _send_quietly
from preflight.services.execution import Observer, run_execute
from twin.pool import TwinPool

log = logging.getLogger("aegis.twin_pool")

class CallerGone(KeyboardInterrupt):
    """The CLI that asked for a run went away: interrupt the run like its Ctrl-C would."""


# ---------------------------------------------------------------------- the holder


class PoolHolder:
    """Serves runs on a unix socket with one warm-twin pool; `serve_forever` until `stop`."""

    def __init__(self, socket_path: str | Path, pool: TwinPool) -> None:
        self.socket_path = Path(socket_path)
        self.pool = pool
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def bind(self) -> None:
        """Listen on the socket (replacing a stale one left by a holder that died)."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            if _answers(self.socket_path):
                raise OSError(f"another twin_pool holder is already listening on {self.socket_path}")
            self.socket_path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window in which others may connect
        try:
            sock.bind(str(self.socket_path))
        finally:
            os.umask(old)
        sock.listen(16)
        sock.settimeout(0.5)  # so `stop` is noticed
        self._sock = sock

    def serve_forever(self) -> None:
        assert self._sock is not None, "bind() first"
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                raise
            t = threading.Thread(target=self._handle, args=(conn,), name="twin-pool-run", daemon=True)
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def stop(self) -> None:
        """Stop accepting; the socket file goes at once (new callers run cold)."""
        self._stopping.set()
        self.socket_path.unlink(missing_ok=True)

    def wait_runs(self, timeout: float | None = None) -> int:
        """Wait for the runs in progress; returns how many are still running."""
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
        return sum(t.is_alive() for t in threads)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self.socket_path.unlink(missing_ok=True)

    # -- one connection --------------------------------------------------------------
    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._peer_check(conn)
                request = _read_line(conn)
                op = request.get("op")
                if op == "status":
                    _send(conn, {"status": self.pool.status()})
                elif op == "run":
                    self._run(conn, request.get("run_pk"))
                else:
                    _send(conn, {"error": f"unknown op {op!r}: run or status"})
            except PermissionError as exc:
                _send_quietly(conn, {"error": str(exc)})
            except (OSError, ValueError) as exc:
                log.warning("twin_pool: a request failed: %s", exc)
                _send_quietly(conn, {"error": f"bad request: {exc}"})

    @staticmethod
    def _peer_check(conn: socket.socket) -> None:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid not in (0, os.getuid()):
            raise PermissionError(f"uid {uid} may not use this twin_pool holder (root or uid {os.getuid()} only)")

    def _run(self, conn: socket.socket, run_pk: Any) -> None:
        if self._stopping.is_set():
            _send(conn, {"error": "the holder is stopping"})
            return
        if not isinstance(run_pk, int):
            _send(conn, {"error": "run_pk must be an integer"})
            return
        close_old_connections()
        try:
            run = PreflightRun.objects.filter(pk=run_pk).first()
            if run is None or run.status != PreflightRun.STATUS_QUEUED or not run.options.get("warm"):
                _send(conn, {"error": f"run {run_pk} is not a queued --warm run"})
                return
            _send(conn, {"accepted": run.run_id, "pid": os.getpid()})
            try:
                status = run_execute(run_pk=run_pk, observer=_streamer(conn), twin_pool=self.pool)
            except KeyboardInterrupt as exc:  # the caller went away: run failed, twin handled by the pipeline
                log.info("twin_pool: run %s interrupted: %s", run.run_id, exc)
                return
            _send_quietly(conn, {"done": status})
        finally:
            connection.close()  # this thread's own connection


def _streamer(conn: socket.socket) -> Observer:
    def observe(step: str, status: str, message: str, data: dict[str, Any]) -> None:
        try:
            _send(conn, {"event": [step, status, message, data]})
        except OSError:
            raise CallerGone("the preflight --warm that asked for this run went away") from None

    return observe
