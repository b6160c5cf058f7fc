"""The egress policy: one check decides every outbound connection AEGIS makes.

LLM endpoints, remote twin agents, Batfish and devices at promotion all call
`egress_check(host, port, purpose)` before a socket opens. The check resolves the host and
refuses it unless *every* address it resolves to lies inside the allowed networks: a name
with one public address among private ones is refused, because the connection could land
on any of them. A refusal raises `EgressRefused` and is logged on `aegis.egress`; nothing
has been sent anywhere by then (resolution goes to the site's own resolver only).

`egress_record()` is what the result and the evidence bundle say about egress: the policy in
force, every destination contacted and every refusal. A run wraps its work in
`egress_scope()` so its record holds only its own destinations.

For httpx, `EgressTransport` checks each request and then connects to the address the
check approved (not a second resolution), so a DNS answer that changes between the check
and the connection cannot smuggle a request out.

No Django import and no settings lookup: the allow-list is passed in (`allow=`), or is the
site policy the Django shell set once at startup with `egress_configure(settings.AEGIS_EGRESS_ALLOW)`
(`aegis_base/apps.py`); a process that never configured it holds `DEFAULT_ALLOW`, the same
default as `aegis_site/settings.py`.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

logger = logging.getLogger("aegis.egress")

# Loopback and the private ranges: a site's LLM server, twin agents and devices live there.
DEFAULT_ALLOW = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(Exception):
    """An outbound connection the policy does not allow. Nothing was sent."""

    def __init__(self, host: str, port: int, purpose: str, reason: str) -> None:
        self.host = host
        self.port = port
        self.purpose = purpose
        self.reason = reason
        super().__init__(f"egress refused: {purpose} to {host}:{port}: {reason}")


@dataclass
class EgressLog:
    """What one scope (a run, or the whole process) contacted and refused."""

    contacted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_process_log = EgressLog()
_current_log: contextvars.ContextVar[EgressLog | None] = contextvars.ContextVar(
    "aegis_egress_log", default=None
)


# The site policy, set by `egress_configure`; None until the shell configured it.
_site_allow: list[str] | None = None


def egress_configure(allow: list[str] | None) -> None:
    """Make `allow` the policy of this process (None: back to `DEFAULT_ALLOW`). Checks it first."""
    global _site_allow
    if allow is not None:
        parse_allow_list(list(allow))  # a malformed entry fails here, at startup, naming the entry
    _site_allow = None if allow is None else list(allow)


def policy_allow_list() -> list[str]:
    """The allowed networks in force: the configured site policy, else `DEFAULT_ALLOW`."""
    return list(_site_allow) if _site_allow is not None else list(DEFAULT_ALLOW)


def parse_allow_list(allow: list[str]) -> list[IPNetwork]:
    """Parse CIDR strings; a malformed entry is a configuration error that names the entry."""
    networks: list[IPNetwork] = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(
                f"AEGIS_EGRESS_ALLOW: {entry!r} is not a network (write CIDR, e.g. 10.0.0.0/8): {exc}"
            ) from exc
    return networks


def _resolve(host: str, port: int) -> list[IPAddress]:
    bare = host.strip("[]")
    try:
        return [ipaddress.ip_address(bare.split("%", 1)[0])]
    except ValueError:
        pass
    infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    seen: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def _log() -> EgressLog:
    return _current_log.get() or _process_log


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refuse(host: str, port: int, purpose: str, reason: str) -> EgressRefused:
    logger.warning("egress refused: %s to %s:%s: %s", purpose, host, port, reason)
    log = _log()
    with log.lock:
        log.refused.append({"host": host, "port": port, "purpose": purpose, "reason": reason, "at": _now()})
    return EgressRefused(host, port, purpose, reason)


def egress_check(host: str, port: int, purpose: str, *, allow: list[str] | None = None) -> str:
    """Resolve `host` and return the address to connect to, or raise `EgressRefused`.

    Every address the name resolves to must lie inside the allowed networks. Records the
    destination in the current egress scope. Opens no socket.
    """
    networks = parse_allow_list(allow if allow is not None else policy_allow_list())
    if not host:
        raise _refuse(host, port, purpose, "no host given")
    if not 0 < int(port) < 65536:
        raise _refuse(host, port, purpose, f"port {port} is not a TCP port")
    try:
        addresses = _resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise _refuse(host, port, purpose, f"the name does not resolve ({exc})") from None
    if not addresses:
        raise _refuse(host, port, purpose, "the name resolves to no address")
    outside = [str(a) for a in addresses if not any(a in net for net in networks)]
    if outside:
        allowed = ", ".join(str(n) for n in networks) or "nothing"
        resolved = "" if outside == [host.strip("[]")] else f" ({host} resolves to {', '.join(outside)})"
        raise _refuse(
            host,
            port,
            purpose,
            f"{', '.join(outside)} is outside the allowed networks{resolved}; allowed: {allowed}. "
            "Point AEGIS at a server inside the perimeter, or add its network to AEGIS_EGRESS_ALLOW.",
        )
    address = str(addresses[0])
    log = _log()
    with log.lock:
        entry = {"host": host, "port": int(port), "address": address, "purpose": purpose}
        if not any(all(c.get(k) == v for k, v in entry.items()) for c in log.contacted):
            log.contacted.append({**entry, "first_at": _now()})
    return address


def egress_record(*, allow: list[str] | None = None) -> dict[str, Any]:
    """The policy in force and the destinations contacted/refused in the current scope."""
    log = _log()
    with log.lock:
        return {
            "policy": [str(n) for n in parse_allow_list(allow if allow is not None else policy_allow_list())],
            "contacted": [dict(c) for c in log.contacted],
            "refused": [dict(r) for r in log.refused],
            "twin_isolation": "twin namespaces have no link or route to the host network",
        }


@contextmanager
def egress_scope() -> Iterator[EgressLog]:
    """Record egress into a fresh log for the duration of the block (one run)."""
    log = EgressLog()
    token = _current_log.set(log)
    try:
        yield log
    finally:
        _current_log.reset(token)


def url_host_port(url: str | httpx.URL) -> tuple[str, int]:
    """Host and port of a URL, with the scheme's default port."""
    parsed = httpx.URL(str(url))
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"{url}: only http:// and https:// URLs are supported")
    if not parsed.host:
        raise ValueError(f"{url}: the URL names no host")
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


class EgressTransport(httpx.BaseTransport):
    """An httpx transport that runs `egress_check` on every request, then connects to the
    checked address (keeping the Host header and TLS server name of the original URL)."""

    def __init__(self, purpose: str, *, allow: list[str] | None = None, **transport_kwargs: Any) -> None:
        self.purpose = purpose
        self.allow = allow
        self._inner = httpx.HTTPTransport(**transport_kwargs)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host, port = url_host_port(request.url)
        address = egress_check(host, port, self.purpose, allow=self.allow)
        if address != host.strip("[]"):
            # Pin the connection to the approved address; Host was set from the URL already.
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=address)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def egress_client(purpose: str, *, allow: list[str] | None = None, transport: dict[str, Any] | None = None,
                  **client_kwargs: Any) -> httpx.Client:
    """An httpx client whose every request goes through the egress policy.

    `transport` is passed to httpx.HTTPTransport (e.g. verify= an ssl.SSLContext for mutual TLS):
    a client with its own transport ignores verify= and cert= given to the client itself."""
    # trust_env=False: an HTTP(S)_PROXY variable must not route AEGIS traffic around the check.
    return httpx.Client(transport=EgressTransport(purpose, allow=allow, **(transport or {})), trust_env=False,
                        **client_kwargs)
