"""The embedded LLM server: llama.cpp in-process (through `xllamacpp`) serving a GGUF file.

For a site with no LLM server of its own. It speaks the same OpenAI-compatible API as vLLM or
Ollama, so the proposer talks to it over HTTP on loopback like to any other server, through
the same egress check. `manage.py llm_serve` runs one in the foreground; `embedded_url()`
starts one inside the current process when AEGIS_LLM_URL is empty and AEGIS_LLM_GGUF is set.
"""

from __future__ import annotations

import atexit
import hashlib
import ipaddress
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"


class EmbeddedServerError(RuntimeError):
    """The embedded server cannot start; the message says what to fix."""


_digest_cache: dict[tuple[str, int, int], str] = {}
_digest_lock = threading.Lock()


def gguf_check(path: str | Path) -> Path:
    """The GGUF file as a resolved path, or `EmbeddedServerError` naming what is wrong with it."""
    gguf = Path(path).expanduser()
    if not gguf.is_file():
        raise EmbeddedServerError(f"GGUF file {gguf} does not exist (AEGIS_LLM_GGUF / --gguf)")
    with gguf.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise EmbeddedServerError(f"{gguf} is not a GGUF file (its first bytes are {magic!r}, not b'GGUF')")
    return gguf.resolve()


def gguf_sha256(path: str | Path) -> str:
    """sha256 of the weights file, cached per (path, size, mtime): a multi-GB file hashes once."""
    gguf = Path(path).resolve()
    stat = gguf.stat()
    key = (str(gguf), stat.st_size, stat.st_mtime_ns)
    with _digest_lock:
        if key in _digest_cache:
            return _digest_cache[key]
    digest = hashlib.sha256()
    with gguf.open("rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _digest_lock:
        _digest_cache[key] = value
    return value


def listen_parse(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`, or `PORT`) as a (host, port) pair; port 0 picks a free one."""
    text = listen.strip()
    if text.isdigit():
        return DEFAULT_HOST, int(text)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise EmbeddedServerError(f"--listen {listen!r}: write HOST:PORT, e.g. 127.0.0.1:8081")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise EmbeddedServerError(
            f"--listen {listen!r}: HOST must be an IP address, e.g. 127.0.0.1"
        ) from None
    if not 0 <= int(port) < 65536:
        raise EmbeddedServerError(f"--listen {listen!r}: port out of range")
    return host, int(port)


def _port_free_check(host: str, port: int) -> None:
    """Refuse a busy port up front: llama.cpp would only say 'Failed to init server'."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise EmbeddedServerError(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another --listen port (0 picks a free one)"
            ) from None


@dataclass
class EmbeddedServer:
    """One llama.cpp server in this process. `start()` returns its /v1 base URL; `stop()` ends it."""

    gguf: Path
    host: str = DEFAULT_HOST
    port: int = 0
    threads: int = 2
    context_tokens: int = 4096
    model_alias: str = ""
    api_key: str = field(default="", repr=False)
    _server: Any = field(default=None, repr=False)
    base_url: str = ""

    def start(self) -> str:
        try:
            import xllamacpp
        except ImportError:
            raise EmbeddedServerError(
                "the embedded LLM server needs the xllamacpp package (pip install -r requirements.txt)"
            ) from None
        gguf = gguf_check(self.gguf)
        _port_free_check(self.host, self.port)
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.hostnames = [self.host]
        params.port = self.port
        params.n_ctx = self.context_tokens
        # One slot: proposals are rare and a CPU is shared with twins; a second request queues.
        params.n_parallel = 1
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.model_alias = {self.model_alias or gguf.stem}
        params.verbosity = 0
        if self.api_key:
            params.api_keys = [self.api_key]
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the C++ side reports every start failure as one generic error
            raise EmbeddedServerError(
                f"llama.cpp could not start with {gguf} on {self.host}:{self.port} ({exc}); "
                "check that the file is a complete GGUF model and that --context fits in memory"
            ) from None
        address = str(self._server.listening_address).rstrip("/")
        self.base_url = address + "/v1"
        return self.base_url

    def stop(self) -> None:
        # xllamacpp stops the HTTP loop and frees the model when the Server object is deleted.
        server, self._server = self._server, None
        del server

    def facts(self) -> dict[str, Any]:
        try:
            from xllamacpp import __version__ as version
        except ImportError:  # pragma: no cover - start() already required it
            version = "unknown"
        return {
            "server": "embedded llama.cpp (xllamacpp)",
            "server_version": version,
            "gguf": str(self.gguf),
            "weights_sha256": gguf_sha256(self.gguf),
            "threads": self.threads,
            "context_tokens": self.context_tokens,
        }


_embedded: dict[str, EmbeddedServer] = {}
_embedded_lock = threading.Lock()


def embedded_url(gguf: str, *, threads: int = 2, context_tokens: int = 4096) -> tuple[str, dict[str, Any]]:
    """Start (once per process) an embedded server for `gguf` on loopback; return URL and facts."""
    key = str(Path(gguf).expanduser().resolve())
    with _embedded_lock:
        server = _embedded.get(key)
        if server is None:
            threads = int(os.environ.get("AEGIS_LLM_THREADS", threads))
            server = EmbeddedServer(Path(key), threads=threads, context_tokens=context_tokens)
            server.start()
            _embedded[key] = server
    return server.base_url, server.facts()


def embedded_stop_all() -> None:
    """Stop every embedded server this process started (also run at exit)."""
    with _embedded_lock:
        servers = list(_embedded.values())
        _embedded.clear()
    for server in servers:
        server.stop()


atexit.register(embedded_stop_all)
