"""HTTP for the ASGI servers (uvicorn workers, daphne): Django's sync handler, one thread hop a request.

AEGIS's views and middleware are all synchronous. Django's own ASGI handler runs them with a
thread switch at every boundary between sync and async code: for our middleware list that is a
dozen hand-offs between the event loop and a thread per request, about a fifth of the CPU of a
page on a small machine (docs/performance.md). Here the whole request (middleware, view,
template) runs in one worker thread through Django's WSGI handler, the same code path as
Django's test client, and the event loop only reads the request body and writes the response.

Streaming responses (bundle and PDF downloads) are read chunk by chunk in the thread pool and
closed at the end, so files are closed and `request_finished` (which returns the database
connection to its pool) always fires.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import Any

from django.core.handlers.wsgi import WSGIHandler

from aegis_site.warmup import warm_up

# Requests of one process served at once. Pages are CPU-bound Python: a few threads keep a core
# busy while others wait for PostgreSQL; more only queue for the GIL.
THREADS = 16
_SPOOL = 64 * 1024


def _environ(scope: dict[str, Any], body: Any) -> dict[str, Any]:
    script_name = scope.get("root_path", "").encode("utf8").decode("latin1")
    path_info = scope["path"].encode("utf8").decode("latin1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name):]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin1").upper().replace("-", "_")
        if name not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            name = f"HTTP_{name}"
        value = raw_value.decode("latin1")
        environ[name] = f"{environ[name]},{value}" if name in environ else value
    return environ


class DjangoHTTP:
    """An ASGI application for `http` scopes that runs Django's WSGI handler in a thread."""

    def __init__(self, warm: bool = True) -> None:
        self.handler = WSGIHandler()
        self.pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="aegis-http")
        # The worker's first page is paid for now, before it takes requests (aegis_site/warmup.py).
        self.warmed = warm_up() if warm else None

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], Any, bool]:
        start: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            start["status"] = int(status.split(" ", 1)[0])
            start["headers"] = [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in headers]

        response = self.handler(environ, start_response)
        if getattr(response, "streaming", False) or not hasattr(response, "content"):
            return start["status"], start["headers"], response, True
        try:
            body = b"".join(response)
        finally:
            response.close()  # request_finished: the DB connection goes back to the pool
        return start["status"], start["headers"], body, False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"DjangoHTTP serves http scopes, not {scope['type']!r}")
        loop = asyncio.get_running_loop()
        with SpooledTemporaryFile(max_size=_SPOOL) as body:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client left before sending its body
                body.write(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body.seek(0)
            status, headers, content, streaming = await loop.run_in_executor(self.pool, self._run, _environ(scope, body))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if not streaming:
            await send({"type": "http.response.body", "body": content})
            return
        chunks = iter(content)
        try:
            while True:
                chunk = await loop.run_in_executor(self.pool, next, chunks, None)
                if chunk is None:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body"})
        finally:
            await loop.run_in_executor(self.pool, content.close)
