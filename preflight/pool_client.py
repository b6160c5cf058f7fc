"""The caller's side of the twin_pool holder (preflight/pool_holder.py): ask it to run, or for its status.

Kept apart from the holder so that `preflight.services` can use it without importing the
holder, which itself executes runs through `preflight.services`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_REQUEST_BYTES = 4096
CONNECT_TIMEOUT_S = 2.0

Observer = Callable[[str, str, str, dict[str, Any]], None]


class HolderUnavailable(Exception):
    """No holder answers on the socket, or it refused before starting the run: the caller runs cold."""


def holder_run(socket_path: str | Path, run_pk: int, observer: Observer | None,
               on_accept: Callable[[dict[str, Any]], None] | None = None) -> str:
    """Have the holder execute run `run_pk`, feeding its steps to `observer`; returns the run's status.

    Raises HolderUnavailable when no holder listens or it refuses before starting the run (the
    run is still queued: the caller may execute it itself).
    """
    sock = _connect(socket_path)
    with sock:
        _send(sock, {"op": "run", "run_pk": run_pk})
        reader = sock.makefile("r", encoding="utf-8")
        first = _decode(reader.readline())
        if "accepted" not in first:
            raise HolderUnavailable(first.get("error") or "the holder did not accept the run")
        if on_accept is not None:
            on_accept(first)
        for line in reader:
            msg = _decode(line)
            if "event" in msg and observer is not None:
                observer(*msg["event"])
            elif "done" in msg:
                return str(msg["done"])
        return "interrupted"  # the holder stopped mid-run (its run record says what happened)


def holder_status(socket_path: str | Path) -> dict[str, Any]:
    """The pool of the holder on `socket_path` (pool.status()); HolderUnavailable when none answers."""
    sock = _connect(socket_path)
    with sock:
        _send(sock, {"op": "status"})
        msg = _decode(sock.makefile("r", encoding="utf-8").readline())
    if "status" not in msg:
        raise HolderUnavailable(msg.get("error") or "no status")
    return msg["status"]


def _connect(socket_path: str | Path) -> socket.socket:
    path = Path(socket_path)
    if not path.exists():
        raise HolderUnavailable(f"no twin_pool holder: {path} does not exist (start `manage.py twin_pool serve`)")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_S)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise HolderUnavailable(f"no twin_pool holder answers on {path}: {exc.strerror or exc}") from None
    sock.settimeout(None)  # a run takes as long as it takes; the holder bounds it with the converge timeouts
    return sock


def _answers(path: Path) -> bool:
    try:
        _connect(path).close()
        return True
    except HolderUnavailable:
        return False


def _send(conn: socket.socket, doc: dict[str, Any]) -> None:
    conn.sendall((json.dumps(doc, default=str) + "\n").encode())


def _send_quietly(conn: socket.socket, doc: dict[str, Any]) -> None:
    try:
        _send(conn, doc)
    except OSError:
        pass


def _read_line(conn: socket.socket) -> dict[str, Any]:
    buf = b""
    conn.settimeout(10.0)
    while not buf.endswith(b"\n"):
        chunk = conn.recv(MAX_REQUEST_BYTES)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST_BYTES:
            raise ValueError(f"request longer than {MAX_REQUEST_BYTES} bytes")
    conn.settimeout(None)
    doc = json.loads(buf.decode() or "{}")
    if not isinstance(doc, dict):
        raise ValueError("request is not a JSON object")
    return doc


def _decode(line: str) -> dict[str, Any]:
    if not line:
        return {}
    try:
        doc = json.loads(line)
    except ValueError:
        return {"error": f"the holder answered something that is not JSON: {line[:80]!r}"}
    return doc if isinstance(doc, dict) else {}
