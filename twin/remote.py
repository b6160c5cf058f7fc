"""The `http` backend: a twin served by a remote twin agent (twin/agent.py) over HTTP/JSON.

Django-free. `RemoteBackend(url=..., token_file=...)` speaks the contract of
`twin/schema/agent-v1.json`, so the pipeline cannot tell it from `netns`. Every request:

* goes through the egress policy first (`egress_check`, before any socket opens);
* carries the bearer token and a fresh X-Request-Id, which the answer must echo (an answer to
  another request - out of order, replayed, from a confused proxy - is refused);
* must come from the same agent instance that spawned the twin (`agent_id`): an agent that
  restarted mid-run has reaped the twin, and the run must say so rather than carry on;
* is bounded in time (connect, and a total deadline per operation) and in size (the body is
  read in chunks and dropped past `max_response_bytes`);
* is schema-checked: a malformed or partial answer is an error naming the field;
* to an https:// agent, optionally over mutual TLS (`tls_client_context`): the agent's
  certificate is checked against the site CA, and the caller shows its own client certificate.

Any failure raises `AgentError` (a `TwinError`), which the pipeline turns into a blocked
verdict with the reason. A spawned twin is renewed in the background while this process
lives; if it dies or loses the agent, the lease runs out and the agent tears the twin down.

Warm twins (`AgentWarmPool`): an agent started with a warm budget (`twin_agent --warm-mb`) keeps
a twin whose run proved its rollback, for the next run of the same lab from any caller. The
pipeline asks for one first (`POST /v1/twins/warm`: verified at its baseline by the agent's pool
just now, or none) and ends a run on a twin it was lent, or a cold run whose rollback it proved,
with `keep` instead of DELETE; the agent keeps the twin only if it sees the baseline for itself
(its own snapshot, no link left down) and every running config is the one the lab loaded at spawn.
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import threading
import time
from typing import Any

import httpx

from perimeter.egress import EgressRefused, egress_client, url_host_port

from .base import (
    ApplyResult,
    ConvergeResult,
    Progress,
    RejectedLine,
    ReloadResult,
    Topology,
    Tunnel,
    TwinError,
    no_progress,
)
from .pool import Lease, WarmTwin, topology_digest
from .wire import (
    SCHEMA_ID,
    WireError,
    apply_from_wire,
    converge_from_wire,
    rejected_from_wire,
    reload_from_wire,
    schema_check,
    topology_to_wire,
)

log = logging.getLogger("aegis.twin")

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a 200-router snapshot is a few MB; far past that is a fault
CONNECT_TIMEOUT_S = 5.0
# Operations that do real work get their own bound plus this margin for the agent's overhead.
OP_MARGIN_S = 60.0
SPAWN_TIMEOUT_S = 600.0  # a 200-router fabric spawns in ~2 minutes under load
OP_TIMEOUT_S = 300.0  # snapshot, apply, reload, running-config, reach
DEFAULT_LEASE_S = 60.0


class AgentError(TwinError):
    """The agent could not be reached, refused, or answered outside the contract."""


def _token_from(token: str | None, token_file: str | None) -> str:
    if token:
        return token
    if not token_file:
        raise AgentError("the http twin backend needs a token: set AEGIS_AGENT_TOKEN_FILE or --agent-token-file")
    try:
        with open(token_file) as fh:
            value = fh.read().strip()
    except OSError as exc:
        raise AgentError(f"cannot read the agent token file {token_file}: {exc.strerror}") from None
    if not value:
        raise AgentError(f"the agent token file {token_file} is empty")
    return value


def tls_client_context(ca: str | None = None, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """TLS to an agent: trust `ca` (else the system's CAs) for the agent's certificate; with
    `cert`/`key`, present that client certificate (mutual TLS). AgentError names the bad file."""
    if bool(cert) != bool(key):
        raise AgentError("a client certificate needs both AEGIS_AGENT_CLIENT_CERT and AEGIS_AGENT_CLIENT_KEY")
    try:
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise AgentError(f"cannot load the agents' CA {ca}: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise AgentError(f"cannot load the client certificate {cert} with key {key}: {exc}") from None
    return ctx


class AgentClient:
    """One agent: requests with the checks above. Thread-safe (httpx.Client is)."""

    def __init__(self, url: str, *, token: str, allow: list[str] | None = None,
                 max_response_bytes: int = MAX_RESPONSE_BYTES, op_timeout_s: float | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, tls_ca: str | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        try:
            url_host_port(self.url)
        except ValueError as exc:
            raise AgentError(f"agent URL: {exc}") from None
        self.max_response_bytes = max_response_bytes
        self.op_timeout_s = op_timeout_s  # overrides every deadline (tests, impatient callers)
        self.connect_timeout_s = connect_timeout_s
        transport: dict[str, Any] = {}
        if self.url.startswith("https://"):
            transport["verify"] = tls_client_context(tls_ca, tls_cert, tls_key)
        elif tls_cert:
            # A client certificate is set for mutual TLS: sending the token in clear would defeat it.
            raise AgentError(f"agent {self.url}: a client certificate is configured (mutual TLS) but the URL is "
                             "http://; write https://")
        self._client = egress_client("twin agent", allow=allow, transport=transport,
                                     headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, definition: str, body: dict[str, Any] | None = None,
             deadline_s: float = OP_TIMEOUT_S, expect_agent: str | None = None) -> dict[str, Any]:
        """Send one request; return the checked response document or raise AgentError."""
        what = f"twin agent {self.url}: {method} {path}"
        deadline_s = self.op_timeout_s if self.op_timeout_s is not None else deadline_s
        request_id = secrets.token_hex(8)
        timeout = httpx.Timeout(deadline_s, connect=self.connect_timeout_s)
        started = time.monotonic()
        try:
            with self._client.stream(method, self.url + path, json=body, timeout=timeout,
                                     headers={"X-Request-Id": request_id}) as resp:
                chunks: list[bytes] = []
                size = 0
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
                    raise AgentError(f"{what}: the answer is {int(declared)} bytes, over the "
                                     f"{self.max_response_bytes}-byte limit")
                for chunk in resp.iter_raw():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise AgentError(f"{what}: the answer grew past the {self.max_response_bytes}-byte limit")
                    if time.monotonic() - started > deadline_s:
                        raise AgentError(f"{what}: no complete answer within {deadline_s:g} s")
                    chunks.append(chunk)
                status = resp.status_code
        except EgressRefused as exc:
            raise AgentError(f"{what}: {exc}") from None
        except httpx.TimeoutException:
            raise AgentError(f"{what}: no answer within {deadline_s:g} s (agent too slow or hung)") from None
        except httpx.RemoteProtocolError as exc:
            raise AgentError(f"{what}: the connection broke or the answer was cut short ({exc})") from None
        except httpx.HTTPError as exc:
            if "[SSL" in str(exc):  # the handshake failed, on either side (ConnectError or ReadError)
                raise AgentError(f"{what}: TLS refused ({exc}): check AEGIS_AGENT_TLS_CA and the client "
                                 "certificate (AEGIS_AGENT_CLIENT_CERT)") from None
            raise AgentError(f"{what}: cannot reach the agent ({type(exc).__name__}: {exc})") from None
        try:
            doc = json.loads(b"".join(chunks))
        except ValueError as exc:
            raise AgentError(f"{what}: HTTP {status}, the answer is not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise AgentError(f"{what}: HTTP {status}, the answer is not a JSON object")
        try:
            schema_check("envelope", doc)
        except WireError as exc:
            raise AgentError(f"{what}: HTTP {status}, not an {SCHEMA_ID} answer ({exc})") from None
        if doc["request_id"] != request_id:
            raise AgentError(f"{what}: the answer belongs to request {doc['request_id']!r}, not {request_id!r} "
                             "(out of order or replayed); refused")
        if expect_agent is not None and doc["agent_id"] != expect_agent:
            raise AgentError(f"{what}: the agent restarted mid-run (instance {expect_agent} is now "
                             f"{doc['agent_id']}); the twin it held was reaped with the old instance")
        if status >= 400 or "error" in doc:
            err = doc.get("error") if isinstance(doc.get("error"), dict) else {}
            code, message = err.get("code", "?"), err.get("message", "(no message)")
            if status == 404 and expect_agent is not None:
                message += " (lease expired or agent restarted)"
            raise AgentError(f"{what}: refused, HTTP {status} {code}: {message}")
        try:
            schema_check(definition, doc)
        except WireError as exc:
            raise AgentError(f"{what}: malformed or partial answer ({exc})") from None
        return doc


class RemoteBackend:
    """`get_backend("http", url=..., token_file=...)`: twins on a remote agent."""

    name = "http"

    def __init__(self, url: str | None = None, *, token_file: str | None = None, token: str | None = None,
                 allow: list[str] | None = None, lease_s: float = DEFAULT_LEASE_S,
                 op_timeout_s: float | None = None, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None) -> None:
        if not url:
            raise AgentError("the http twin backend needs an agent URL: set AEGIS_TWIN_AGENTS or --agent URL")
        self.client = AgentClient(url, token=_token_from(token, token_file), allow=allow,
                                  op_timeout_s=op_timeout_s, max_response_bytes=max_response_bytes,
                                  tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
        self.lease_s = lease_s
        self.tier = "real"  # until the agent says otherwise (health / spawn facts)

    def health(self) -> dict[str, Any]:
        doc = self.client.call("GET", "/v1/health", "health_response", deadline_s=30.0)
        self.tier = doc["tier"]
        return doc

    def status(self) -> dict[str, Any]:
        return self.client.call("GET", "/v1/status", "status_response", deadline_s=30.0)

    def spawn(self, topology: Topology, run_id: str | None = None, progress: Progress = no_progress,
              tunnels: list[Tunnel] | None = None) -> RemoteTwin:
        body: dict[str, Any] = {"topology": topology_to_wire(topology), "run_id": run_id, "lease_s": self.lease_s}
        if tunnels:
            body["tunnels"] = [{"node": t.node, "iface": t.iface, "vni": t.vni, "remote": t.remote, "mac": t.mac,
                                "mtu": t.mtu, "dstport": t.dstport} for t in tunnels]
        doc = self.client.call("POST", "/v1/twins", "spawn_response", body, deadline_s=SPAWN_TIMEOUT_S)
        twin = RemoteTwin(self.client, topology, doc)
        for ev in doc["events"]:
            progress(ev["step"], ev["status"], ev["message"], ev["data"])
        self.tier = twin.facts.get("tier", self.tier)
        return twin

    def warm(self, topology: Topology, run_id: str | None = None) -> RemoteTwin | None:
        """A warm twin of the lab from the agent's pool (`twin.warm` says from which baseline), or None."""
        body: dict[str, Any] = {"topology": topology_to_wire(topology), "run_id": run_id, "lease_s": self.lease_s}
        doc = self.client.call("POST", "/v1/twins/warm", "warm_response", body, deadline_s=SPAWN_TIMEOUT_S)
        if doc["warm"] is None:
            return None
        twin = RemoteTwin(self.client, topology, doc)
        twin.warm = doc["warm"]
        return twin

    def warm_pool(self) -> AgentWarmPool:
        return AgentWarmPool(self)


class RemoteTwin:
    """A twin on an agent. Its lease is renewed in the background until `teardown()`."""

    def __init__(self, client: AgentClient, topology: Topology, spawned: dict[str, Any]) -> None:
        self.client = client
        self.topology = topology
        self.twin_id: str = spawned["twin_id"]
        self.run_id = self.twin_id  # what the pipeline's events name a twin by
        self.agent_id: str = spawned["agent_id"]
        self.warm: dict[str, Any] | None = None  # from the agent's warm pool: baseline_digest, uses, snapshot
        self.ended = False  # kept warm or torn down by `keep`: the agent no longer lends it to us
        self.lease_s = float(spawned["lease"]["ttl_s"])
        facts = dict(spawned["facts"])
        self.facts: dict[str, Any] = {**facts, "backend": "http", "agent": client.url,
                                      "agent_backend": facts.get("backend"), "agent_twin_id": self.twin_id}
        self.load_errors: list[RejectedLine] = [rejected_from_wire(r) for r in spawned["load_errors"]]
        self._stop = threading.Event()
        self.renew_error: str | None = None
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.twin_id[:8]}", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        # A third of the lease: two renewals may fail (a slow agent) before the twin is lost.
        while not self._stop.wait(max(0.2, self.lease_s / 3)):
            try:
                self._op("renew", {}, "renew_response", deadline_s=max(1.0, self.lease_s / 3))
                self.renew_error = None
            except AgentError as exc:
                self.renew_error = str(exc)

    def _op(self, op: str, body: dict[str, Any], definition: str, deadline_s: float = OP_TIMEOUT_S) -> dict[str, Any]:
        return self.client.call("POST", f"/v1/twins/{self.twin_id}/{op}", definition, body, deadline_s=deadline_s,
                                expect_agent=self.agent_id)

    def converge(self, timeout: float, stable_for: float = 3.0) -> ConvergeResult:
        doc = self._op("converge", {"timeout": timeout, "stable_for": stable_for}, "converge_response",
                       deadline_s=timeout + OP_MARGIN_S)
        return converge_from_wire(doc["result"])

    def snapshot(self, reachability: bool = True) -> dict[str, Any]:
        return self._op("snapshot", {"reachability": reachability}, "snapshot_response")["snapshot"]

    def apply(self, node: str, lines: str) -> ApplyResult:
        return apply_from_wire(self._op("apply", {"node": node, "lines": lines}, "apply_response")["result"])

    def reach(self, src: str, address: str, count: int = 1) -> bool:
        return self._op("reach", {"src": src, "address": address, "count": count}, "reach_response")["reachable"]

    def ping_pairs(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        """Ping (router, address) pairs from this agent's routers (a twin split across hosts)."""
        doc = self._op("reachability", {"pairs": [list(p) for p in pairs]}, "reachability_response")
        return {(s, a): ok for s, a, ok in doc["results"]}

    def running_config(self, node: str) -> str:
        return self._op("running-config", {"node": node}, "running_config_response")["config"]

    def fib(self) -> dict[str, Any]:
        return self._op("fib", {}, "fib_response")["fib"]

    def probe(self, src: str, address: str) -> dict[str, Any]:
        return self._op("probe", {"src": src, "address": address}, "probe_response")["probe"]

    def set_link(self, node: str, iface: str, up: bool) -> None:
        self._op("set-link", {"node": node, "iface": iface, "up": up}, "set_link_response")

    def reload_config(self, node: str, config: str, test_only: bool = False) -> ReloadResult:
        doc = self._op("reload", {"node": node, "config": config, "test_only": test_only}, "reload_response")
        return reload_from_wire(doc["result"])

    def keep(self, proven: bool, after: dict[str, Any] | None, baseline: dict[str, Any] | None = None) -> bool:
        """End the run on this twin: the agent keeps it warm (True) when `proven` and it sees the
        baseline again for itself, else tears it down (False). Either way this lease is over."""
        self._stop.set()
        # A renewal still in flight would hold the twin busy on the agent, which then refuses keep.
        self._renewer.join(timeout=self.lease_s)
        try:
            doc = self._op("keep", {"proven": proven, "after": after, "baseline": baseline}, "keep_response",
                           deadline_s=120.0)
        except AgentError as exc:
            raise self._lease_ends(exc) from None
        self.ended = True
        return bool(doc["kept"])

    def teardown(self) -> None:
        """Ask the agent to tear the twin down. If it cannot be asked, the lease runs out on the agent."""
        self._stop.set()
        if self.ended:
            return  # `keep` already ended it on the agent
        try:
            self.client.call("DELETE", f"/v1/twins/{self.twin_id}", "teardown_response", deadline_s=120.0,
                             expect_agent=self.agent_id)
        except AgentError as exc:
            raise self._lease_ends(exc) from None

    def _lease_ends(self, exc: AgentError) -> AgentError:
        return AgentError(f"{exc}; the agent tears the twin down when its {self.lease_s:g} s lease runs out "
                          "(or reaped it at restart)")


class AgentWarmPool:
    """The pipeline's warm-pool interface (`acquire`, `release`, `adopt`, as twin/pool.py's
    TwinPool) for twins on an agent: the agent's own pool holds them, across callers."""

    def __init__(self, backend: RemoteBackend) -> None:
        self.backend = backend

    def acquire(self, topology: Topology) -> Lease | None:
        try:
            twin = self.backend.warm(topology)
        except AgentError as exc:
            # An agent that keeps no warm twins (or an older one without the endpoint): spawn cold.
            log.info("no warm twin from %s: %s", self.backend.client.url, exc)
            return None
        if twin is None or twin.warm is None:
            return None
        entry = WarmTwin(lab=topology.name, digest=topology_digest(topology), twin=twin,
                         baseline=twin.warm["snapshot"], baseline_digest=twin.warm["baseline_digest"], configs={},
                         memory_mb=0.0, uses=int(twin.warm["uses"]), leased=True)
        return Lease(entry, twin.warm["snapshot"])

    def release(self, lease: Lease, after: dict[str, Any] | None, rollback_verified: bool) -> bool:
        return self._keep(lease.twin, rollback_verified and after is not None, after)

    def adopt(self, topology: Topology, twin: RemoteTwin, baseline: dict[str, Any], after: dict[str, Any]) -> bool:
        return self._keep(twin, True, after, baseline)

    def _keep(self, twin: RemoteTwin, proven: bool, after: dict[str, Any] | None,
              baseline: dict[str, Any] | None = None) -> bool:
        try:
            return twin.keep(proven, after, baseline)
        except AgentError as exc:
            # An older agent without `keep`, or one that cannot be asked: not kept; the caller
            # tears the twin down (DELETE), or its lease runs out on the agent.
            log.info("twin %s not kept warm: %s", twin.twin_id, exc)
            return False
