"""The twin agent: the `Backend` protocol served over HTTP/JSON under /v1/, on a twin host.

Django-free, standard library HTTP server (one thread per request). The contract is
`twin/schema/agent-v1.json`; `manage.py twin_agent` runs it as root. What it guarantees:

* Only callers inside the allow-list (AEGIS_EGRESS_ALLOW: the same perimeter the client's
  egress check enforces) get past the socket, and only with the bearer token (compared in
  constant time). Both refusals say why and run nothing.
* Every spawned twin is held by a lease: it is torn down when its holder stops renewing it
  (each request on the twin renews it; the client renews it in the background while it
  lives), so a caller that crashed, was killed or lost the network leaves nothing behind. A
  request in progress holds the lease, so a long converge is not cut off.
* A spawn is admitted only when the twin's measured memory cost fits the agent's budget
  (twin/capacity.py); otherwise 503 `capacity` with the figures.
* At start the agent reaps twins whose owner died (a previous agent killed mid-run), and on
  shutdown it tears down every twin it holds.
* Optionally over mutual TLS (`tls_server_context`): the agent shows its certificate and, given
  a CA, answers only callers whose client certificate that CA signed - before any HTTP is read.
  The bearer token is still required on top.
* Input is untrusted: bodies are size-capped and schema-checked, topologies re-checked
  (twin/wire.py), and nothing in a request becomes a shell command.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from perimeter.egress import parse_allow_list

from .base import Backend, Topology, TopologyError, Tunnel, TwinError
from .capacity import NODE_COST_MB, twin_cost_mb
from .pool import Lease, TwinPool
from .wire import (
    SCHEMA_ID,
    WireError,
    apply_to_wire,
    converge_to_wire,
    rejected_to_wire,
    reload_to_wire,
    schema_check,
    topology_from_wire,
)

AGENT_VERSION = "1"
DEFAULT_PORT = 5757
DEFAULT_LEASE_S = 60.0
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # a 2000-node topology with its configs fits well inside
REQUEST_READ_TIMEOUT_S = 30.0  # a caller that sends its request slower than this is dropped
_TWIN_PATH = re.compile(r"^/v1/twins/([0-9a-f]{32})(?:/([a-z-]+))?$")
_OPS = {"converge", "snapshot", "apply", "reload", "reach", "reachability", "running-config", "renew", "fib",
        "probe", "set-link"}
log = logging.getLogger("aegis.twin.agent")


class AgentRefusal(Exception):
    """A request the agent answers with an error document: HTTP status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class AgentConfig:
    token: str
    allow: list[str]  # networks callers may come from (CIDR strings)
    budget_mb: int  # memory the agent may give to twins; 0 = no twin fits
    lease_s: float = DEFAULT_LEASE_S  # default lease when the caller asks for none
    max_lease_s: float = 3600.0
    max_request_bytes: int = MAX_REQUEST_BYTES
    expire_every_s: float = 0.5
    underlay: str | None = None  # this host's address for VXLAN links to other agents (twin/split.py)
    warm_mb: float = 0.0  # warm twins kept between callers (twin/pool.py), part of budget_mb; 0 = none


@dataclass
class _Held:
    twin_id: str
    twin: Any
    topology: Topology
    ttl_s: float
    expires_at: float
    reserved_mb: int
    caller: str
    busy: int = 0
    op_lock: threading.Lock = field(default_factory=threading.Lock)
    pool_lease: Lease | None = None  # taken from the warm pool: goes back to it, or is discarded
    spawn_configs: dict[str, str] | None = None  # running configs right after spawn (warm pool on)
    links_down: set[tuple[str, str]] = field(default_factory=set)  # set down by the caller (set-link)

    def lease(self) -> dict[str, Any]:
        left = self.ttl_s if self.busy else max(0.0, self.expires_at - time.monotonic())
        return {"id": self.twin_id, "ttl_s": self.ttl_s, "expires_in_s": round(left, 3)}


def token_read(path: str) -> str:
    """The bearer token from `path` (surrounding whitespace ignored); refuses an empty or short one."""
    try:
        with open(path) as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the agent token file {path}: {exc.strerror}") from None
    if len(token) < 16:
        raise ValueError(f"the agent token in {path} is shorter than 16 characters: write a long random "
                         "one, e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE`")
    return token


class TwinAgent:
    """The agent's state and request dispatch; the HTTP layer is `AgentHTTPServer`."""

    def __init__(self, config: AgentConfig, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.networks = parse_allow_list(config.allow)
        self.agent_id = secrets.token_hex(8)
        self._held: dict[str, _Held] = {}
        self._reserved_mb = 0  # includes spawns in progress; not the warm pool's twins (pool.memory_mb())
        # Warm twins kept between callers, for real FRR only (a simulated twin costs nothing to make).
        self.pool: TwinPool | None = (TwinPool(config.warm_mb, holder="twin_agent")
                                      if config.warm_mb > 0 and backend.name == "netns" else None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._expirer = threading.Thread(target=self._expire_loop, name="twin-agent-leases", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._expirer.start()

    def close(self) -> None:
        """Stop expiring leases and tear down every twin still held."""
        self._stop.set()
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        for h in held:
            self._teardown(h, "the agent is shutting down")
        if self.pool is not None:
            self.pool.close()

    def _expire_loop(self) -> None:
        while not self._stop.wait(self.config.expire_every_s):
            now = time.monotonic()
            with self._lock:
                expired = [h for h in self._held.values() if not h.busy and h.expires_at <= now]
                for h in expired:
                    del self._held[h.twin_id]
            for h in expired:
                self._teardown(h, f"lease not renewed for {h.ttl_s:g} s")

    def _teardown(self, held: _Held, why: str) -> None:
        log.warning("tearing down twin %s (%s, %d nodes): %s", held.twin_id, held.topology.name,
                    len(held.topology.nodes), why)
        try:
            with held.op_lock:
                self._end(held)  # a lent twin is discarded: its run never said how it ended
        except Exception as exc:  # noqa: BLE001 - the reaper removes leftovers; the agent keeps serving
            log.error("teardown of twin %s failed: %s", held.twin_id, exc)
        finally:
            with self._lock:
                self._reserved_mb -= held.reserved_mb

    # ------------------------------------------------------------------ access

    def caller_allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    def authorized(self, header: str | None) -> bool:
        scheme, _, presented = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return False
        return hmac.compare_digest(presented.strip().encode(), self.config.token.encode())

    # ------------------------------------------------------------------ dispatch

    def handle(self, method: str, path: str, body: Any, caller: str) -> tuple[int, dict[str, Any]]:
        """Answer one authenticated request: (HTTP status, response fields without the envelope)."""
        if path == "/v1/health" and method == "GET":
            return 200, {"status": "ok", "backend": self.backend.name, "tier": self.backend.tier,
                         "version": AGENT_VERSION, "underlay": self.config.underlay}
        if path == "/v1/status" and method == "GET":
            return 200, self.status()
        if path == "/v1/twins" and method == "POST":
            return 201, self.spawn(body, caller)
        if path == "/v1/twins/warm" and method == "POST":
            return 200, self.warm(body, caller)
        m = _TWIN_PATH.match(path)
        if not m:
            raise AgentRefusal(404, "not_found", f"no endpoint {method} {path} (see twin/schema/agent-v1.json)")
        twin_id, op = m.group(1), m.group(2)
        if op is None:
            if method != "DELETE":
                raise AgentRefusal(405, "bad_request", f"{method} {path}: use DELETE to tear a twin down")
            return 200, self.teardown(twin_id)
        if method == "POST" and op == "keep":
            return 200, self.keep(twin_id, body)
        if method != "POST" or op not in _OPS:
            raise AgentRefusal(404, "not_found", f"no endpoint {method} {path}")
        return 200, self.operate(twin_id, op, body)

    def status(self) -> dict[str, Any]:
        with self._lock:
            twins = [{"twin_id": h.twin_id, "lab": h.topology.name, "nodes": len(h.topology.nodes),
                      "lease": h.lease(), "reserved_mb": h.reserved_mb} for h in self._held.values()]
            reserved = self._reserved_mb
        pooled = self.pool.holdings() if self.pool is not None else []
        idle = round(sum(t["memory_mb"] for t in pooled if not t["leased"]))
        reserved += round(sum(t["memory_mb"] for t in pooled))
        # free_mb is what a spawn can have: idle warm twins give way to it (warm_idle_mb of them).
        return {"backend": self.backend.name, "tier": self.backend.tier, "twins": twins,
                "underlay": self.config.underlay,
                "capacity": {"budget_mb": self.config.budget_mb, "reserved_mb": reserved,
                             "free_mb": self.config.budget_mb - reserved + idle, "node_cost_mb": NODE_COST_MB,
                             "warm_idle_mb": idle},
                "warm": {"budget_mb": self.pool.budget_mb if self.pool is not None else 0,
                         "twins": [{k: t[k] for k in ("lab", "routers", "memory_mb", "baseline_digest", "uses",
                                                       "leased")} for t in pooled]}}

    def spawn(self, body: Any, caller: str) -> dict[str, Any]:
        _checked("spawn_request", body)
        try:
            topology = topology_from_wire(body["topology"])
        except TopologyError as exc:
            raise AgentRefusal(400, "topology_error", str(exc)) from None
        ttl = self._ttl(body)
        cost = twin_cost_mb(topology)
        if self.pool is not None:
            # Idle warm twins give way to a new twin rather than refusing it (only when giving way
            # is enough: otherwise the spawn is refused and the warm twins stay).
            with self._lock:
                short = cost - self._free_mb()
            if 0 < short <= self.pool.idle_mb():
                self.pool.evict_idle(short)
        with self._lock:
            free = int(self._free_mb())
            if cost > free:
                raise AgentRefusal(503, "capacity", f"the twin needs ~{cost} MB; this agent has {free} MB free of "
                                   f"its {self.config.budget_mb} MB budget (retry later or use another agent)")
            self._reserved_mb += cost
        events: list[dict[str, Any]] = []

        def progress(step: str, status: str, message: str, data: dict[str, Any]) -> None:
            events.append({"step": step, "status": status, "message": message, "data": _jsonable(data)})

        try:
            tunnels = self._tunnels(body.get("tunnels") or [], topology)
            if tunnels:
                twin = self.backend.spawn(topology, body.get("run_id") or None, progress, tunnels=tunnels)
            else:
                twin = self.backend.spawn(topology, body.get("run_id") or None, progress)
        except BaseException:
            with self._lock:
                self._reserved_mb -= cost
            raise
        spawn_configs = None
        if self.pool is not None:
            # What the lab's configs load as: a twin is kept warm only if it is back to exactly this
            # (`keep`), whatever the caller says about its run.
            try:
                spawn_configs = TwinPool.running_configs(twin)
            except Exception as exc:  # noqa: BLE001 - then this twin is never kept warm
                log.warning("cannot read the running configs of a new twin (it will not be kept warm): %s", exc)
        twin_id = secrets.token_hex(16)
        held = _Held(twin_id=twin_id, twin=twin, topology=topology, ttl_s=ttl,
                     expires_at=time.monotonic() + ttl, reserved_mb=cost, caller=caller, spawn_configs=spawn_configs)
        with self._lock:
            self._held[twin_id] = held
        log.info("spawned twin %s (%s, %d nodes, ~%d MB) for %s, lease %g s", twin_id, topology.name,
                 len(topology.nodes), cost, caller, ttl)
        return {**self._lent(held), "events": events}

    def _ttl(self, body: dict[str, Any]) -> float:
        return min(float(body.get("lease_s") or self.config.lease_s), self.config.max_lease_s)

    def _lent(self, held: _Held) -> dict[str, Any]:
        """What a caller gets with a twin: its id, lease, facts and the config lines FRR refused."""
        facts = dict(getattr(held.twin, "facts", {}) or {})
        facts.setdefault("backend", self.backend.name)
        facts.setdefault("tier", self.backend.tier)
        return {"twin_id": held.twin_id, "lease": held.lease(), "facts": _jsonable(facts),
                "load_errors": [rejected_to_wire(r) for r in getattr(held.twin, "load_errors", [])]}

    def _free_mb(self) -> float:
        """Budget not held by callers' twins nor by the warm pool (call with the lock held)."""
        return self.config.budget_mb - self._reserved_mb - (self.pool.memory_mb() if self.pool is not None else 0)

    def _tunnels(self, raw: list[dict[str, Any]], topology: Topology) -> list[Tunnel]:
        """Cross-host link ends, checked like the links of a lab; the local end is this agent's underlay."""
        from .topology import IFNAME_RE, MAC_RE

        if not raw:
            return []
        if self.backend.name != "netns":
            raise AgentRefusal(400, "bad_request", f"the {self.backend.name} backend cannot make cross-host links")
        out = []
        for i, t in enumerate(raw):
            where = f"tunnel {i}"
            if t["node"] not in topology.nodes or topology.nodes[t["node"]].role == "bridge":
                raise AgentRefusal(400, "topology_error", f"{where}: {t['node']!r} is not a router or host of the lab")
            if not IFNAME_RE.match(t["iface"]) or t["iface"] == "lo":
                raise AgentRefusal(400, "topology_error", f"{where}: interface name {t['iface']!r} is not valid")
            if t.get("mac") and not MAC_RE.match(t["mac"]):
                raise AgentRefusal(400, "topology_error", f"{where}: {t['mac']!r} is not a MAC address")
            try:
                remote = str(ipaddress.ip_address(t["remote"]))
            except ValueError:
                raise AgentRefusal(400, "topology_error", f"{where}: remote {t['remote']!r} is not an address") from None
            # The far end of a tunnel is another agent: it must be inside the perimeter too.
            if not self.caller_allowed(remote):
                raise AgentRefusal(403, "forbidden", f"{where}: remote {remote} is outside the allowed networks")
            out.append(Tunnel(node=t["node"], iface=t["iface"], vni=int(t["vni"]), remote=remote,
                              local=self.config.underlay, mac=t.get("mac"), mtu=int(t.get("mtu") or 1450),
                              dstport=int(t.get("dstport") or 4789)))
        return out

    def _hold(self, twin_id: str) -> _Held:
        with self._lock:
            held = self._held.get(twin_id)
            if held is None:
                raise AgentRefusal(404, "not_found", f"no twin {twin_id} on this agent: its lease expired, it was "
                                   "torn down, or the agent restarted")
            held.busy += 1
            return held

    def _release(self, held: _Held) -> None:
        with self._lock:
            held.busy -= 1
            held.expires_at = time.monotonic() + held.ttl_s

    def operate(self, twin_id: str, op: str, body: Any) -> dict[str, Any]:
        definition = op.replace("-", "_") + "_request"
        _checked(definition, body)
        held = self._hold(twin_id)
        try:
            with held.op_lock:
                out = self._run_op(held.twin, op, body)
                if op == "set-link":
                    (held.links_down.discard if body["up"] else held.links_down.add)((body["node"], body["iface"]))
        finally:
            self._release(held)
        return {"twin_id": twin_id, "lease": held.lease(), **out}

    @staticmethod
    def _run_op(twin: Any, op: str, body: dict[str, Any]) -> dict[str, Any]:
        if op == "renew":
            return {}
        if op == "converge":
            return {"result": converge_to_wire(twin.converge(float(body["timeout"]), float(body.get("stable_for", 3.0))))}
        if op == "snapshot":
            return {"snapshot": twin.snapshot(reachability=bool(body.get("reachability", True)))}
        if op == "apply":
            return {"result": apply_to_wire(twin.apply(body["node"], body["lines"]))}
        if op == "reload":
            return {"result": reload_to_wire(twin.reload_config(body["node"], body["config"],
                                                                test_only=bool(body.get("test_only", False))))}
        if op == "reach":
            return {"reachable": bool(twin.reach(body["src"], body["address"], int(body.get("count", 1))))}
        if op == "reachability":
            if not hasattr(twin, "ping_pairs"):
                raise TwinError("this backend cannot ping pairs for a twin split across hosts")
            pairs = [(str(s), str(a)) for s, a in body["pairs"]]
            found = twin.ping_pairs(pairs)
            return {"results": [[s, a, bool(found[(s, a)])] for s, a in pairs]}
        if op == "fib":
            return {"fib": twin.fib()}
        if op == "probe":
            return {"probe": twin.probe(body["src"], body["address"])}
        if op == "set-link":
            twin.set_link(body["node"], body["iface"], bool(body["up"]))
            return {}
        return {"config": twin.running_config(body["node"])}  # running-config

    def warm(self, body: Any, caller: str) -> dict[str, Any]:
        """A warm twin of the lab for this caller, verified at its baseline now (twin/pool.py:
        the lab's digest, a fresh snapshot and every running config), or `warm: null` (spawn)."""
        _checked("warm_request", body)
        try:
            topology = topology_from_wire(body["topology"])
        except TopologyError as exc:
            raise AgentRefusal(400, "topology_error", str(exc)) from None
        lease = self.pool.acquire(topology) if self.pool is not None else None
        if lease is None:
            return {"warm": None}
        ttl = self._ttl(body)
        twin_id = secrets.token_hex(16)
        # Its memory stays counted in the pool's (pool.memory_mb()), not in reserved_mb.
        held = _Held(twin_id=twin_id, twin=lease.twin, topology=topology, ttl_s=ttl,
                     expires_at=time.monotonic() + ttl, reserved_mb=0, caller=caller, pool_lease=lease)
        with self._lock:
            self._held[twin_id] = held
        log.info("lent warm twin %s (%s, use %d) to %s as %s", getattr(lease.twin, "run_id", "?"), topology.name,
                 lease.entry.uses, caller, twin_id)
        # The lines FRR refused at spawn are still refused in this twin: the answer says so, warm or cold.
        return {**self._lent(held), "events": [],
                "warm": {"baseline_digest": lease.entry.baseline_digest, "uses": lease.entry.uses,
                         "snapshot": lease.snapshot}}

    def keep(self, twin_id: str, body: Any) -> dict[str, Any]:
        """The end of a run: keep the twin warm when its rollback was proven and the pool sees the
        baseline for itself, else tear it down. Either way the caller's lease ends here."""
        _checked("keep_request", body)
        with self._lock:
            held = self._held.get(twin_id)
            if held is None:
                raise AgentRefusal(404, "not_found", f"no twin {twin_id} on this agent (already torn down, expired, "
                                   "or the agent restarted)")
            if held.busy:
                raise AgentRefusal(409, "busy", f"twin {twin_id} is still running an operation")
            del self._held[twin_id]
        kept, why, ended = False, "this agent keeps no warm twins", False
        try:
            with held.op_lock:
                if self.pool is not None and held.links_down:
                    why = f"{len(held.links_down)} link(s) the run set down are still down"
                elif self.pool is not None and held.pool_lease is not None:
                    kept, ended = self.pool.release(held.pool_lease, body.get("after"), bool(body["proven"])), True
                    why = "" if kept else "the pool did not see the baseline again (it tore the twin down)"
                elif self.pool is not None:
                    kept, why = self._adopt(held, body)
                if not kept and not ended:
                    self._end(held)
        finally:
            with self._lock:
                self._reserved_mb -= held.reserved_mb
        log.info("twin %s of %s %s", twin_id, held.topology.name, "kept warm" if kept else f"torn down ({why})")
        return {"twin_id": twin_id, "kept": kept, "why": why}

    def _adopt(self, held: _Held, body: dict[str, Any]) -> tuple[bool, str]:
        """A cold twin enters the pool on the agent's own evidence, not the caller's word: its
        running configs are the ones the lab loaded at spawn, and a snapshot taken now equals the
        baseline the run reports (and the state it reports after its rollback)."""
        if not body["proven"] or body.get("baseline") is None or held.spawn_configs is None:
            return False, "the run did not prove its rollback"
        now = held.twin.snapshot()
        if now != body["baseline"] or now != body.get("after"):
            return False, "the twin's state now is not the baseline the run reports"
        kept = self.pool.adopt(held.topology, held.twin, now, now, expect_configs=held.spawn_configs,  # type: ignore[union-attr]
                               min_memory_mb=held.reserved_mb)
        return kept, "" if kept else "a running config is not the lab's, or the twin does not fit the warm budget"

    def teardown(self, twin_id: str) -> dict[str, Any]:
        with self._lock:
            held = self._held.pop(twin_id, None)
        if held is None:
            raise AgentRefusal(404, "not_found", f"no twin {twin_id} on this agent (already torn down, expired, "
                               "or the agent restarted)")
        try:
            with held.op_lock:
                self._end(held)
        finally:
            with self._lock:
                self._reserved_mb -= held.reserved_mb
        return {"twin_id": twin_id, "torn_down": True}

    def _end(self, held: _Held) -> None:
        """Tear a held twin down; one lent from the warm pool leaves the pool with it."""
        if held.pool_lease is not None and self.pool is not None:
            self.pool.release(held.pool_lease, None, False)
        else:
            held.twin.teardown()


def _checked(definition: str, body: Any) -> None:
    try:
        schema_check(definition, body)
    except WireError as exc:
        raise AgentRefusal(400, "bad_request", str(exc)) from None


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


class _Handler(BaseHTTPRequestHandler):
    server: AgentHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_READ_TIMEOUT_S
    server_version = "aegis-twin-agent/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.client_address[0], format % args)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        agent = self.server.agent
        request_id = (self.headers.get("X-Request-Id") or secrets.token_hex(8))[:64]
        try:
            if not agent.caller_allowed(self.client_address[0]):
                self.close_connection = True
                raise AgentRefusal(403, "forbidden", f"caller {self.client_address[0]} is outside the agent's "
                                   "allowed networks (AEGIS_EGRESS_ALLOW)")
            if not agent.authorized(self.headers.get("Authorization")):
                self.close_connection = True
                raise AgentRefusal(401, "unauthorized", "missing or wrong bearer token (AEGIS_AGENT_TOKEN_FILE)")
            body = self._body(method, agent.config.max_request_bytes)
            status, out = agent.handle(method, self.path.split("?", 1)[0], body, self.client_address[0])
        except AgentRefusal as exc:
            status, out = exc.status, {"error": {"code": exc.code, "message": exc.message}}
        except TopologyError as exc:
            status, out = 400, {"error": {"code": "topology_error", "message": str(exc)}}
        except TwinError as exc:
            status, out = 422, {"error": {"code": "twin_error", "message": str(exc)}}
        except Exception as exc:  # noqa: BLE001 - answered, logged, and the agent keeps serving
            log.exception("request %s %s failed", method, self.path)
            status, out = 500, {"error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}
        self._send(status, {"schema": SCHEMA_ID, "agent_id": agent.agent_id, "request_id": request_id, **out})

    def _body(self, method: str, limit: int) -> Any:
        if method != "POST":
            return None
        raw_len = self.headers.get("Content-Length")
        if raw_len is None or not raw_len.isdigit():
            self.close_connection = True
            raise AgentRefusal(411, "bad_request", "a POST needs a Content-Length header")
        length = int(raw_len)
        if length > limit:
            self.close_connection = True  # the body is not read: drop the connection after answering
            raise AgentRefusal(413, "too_large", f"request body of {length} bytes is over the agent's {limit} limit")
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            raise AgentRefusal(400, "bad_request", "the request body ended before Content-Length bytes")
        try:
            return json.loads(data or b"{}")
        except ValueError as exc:
            raise AgentRefusal(400, "bad_request", f"the request body is not JSON: {exc}") from None

    def _send(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError as exc:  # the caller went away; its lease runs out on its own
            log.info("could not answer %s: %s", self.client_address[0], exc)
            self.close_connection = True


def tls_server_context(cert: str, key: str, ca: str | None = None) -> ssl.SSLContext:
    """The agent's TLS: its certificate and key; with `ca`, callers must present a client
    certificate that CA signed (mutual TLS). ValueError names the file that is wrong."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the agent's TLS certificate {cert} with key {key}: {exc}") from None
    if ca:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the CA for client certificates {ca}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class AgentHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], agent: TwinAgent, tls: ssl.SSLContext | None = None) -> None:
        self.agent = agent
        self.tls = tls
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        with self._conns_lock:
            self._conns.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """With TLS, the handshake runs here, in the connection's own thread (a caller that stalls
        it holds up nobody else) and under the read timeout; a failed one is logged and dropped."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(REQUEST_READ_TIMEOUT_S)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake with %s refused: %s", client_address[0], exc)
            return
        with self._conns_lock:
            self._conns.discard(request)
            self._conns.add(conn)
        try:
            super().finish_request(conn, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def server_close(self) -> None:
        """Close the listening socket and every kept-alive connection: a stopped agent answers nothing more."""
        super().server_close()
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT', '[v6]:PORT' or 'HOST' (port 5757) -> (host, port); ValueError says what to fix."""
    m = re.match(r"^\[([0-9a-fA-F:.]+)\](?::(\d+))?$", text) or re.match(r"^([^:\[\]]+)(?::(\d+))?$", text)
    if not m:
        raise ValueError(f"--listen {text!r}: write HOST:PORT, e.g. 10.0.0.5:{DEFAULT_PORT}")
    port = int(m.group(2) or DEFAULT_PORT)
    if not 0 <= port < 65536:
        raise ValueError(f"--listen {text!r}: {port} is not a TCP port")
    return m.group(1), port


def agent_serve(agent: TwinAgent, host: str, port: int,
                ready: Callable[[AgentHTTPServer], None] | None = None, tls: ssl.SSLContext | None = None) -> None:
    """Reap orphaned twins, then serve until `shutdown()`; every twin held is torn down on the way out."""
    from .reap import twin_reap_orphans

    twin_reap_orphans()
    server = AgentHTTPServer((host, port), agent, tls=tls)
    agent.start()
    try:
        if ready is not None:
            ready(server)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        agent.close()
