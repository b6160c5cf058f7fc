"""Contract tests of the twin agent and the `http` backend (fast: the agent serves the simulator).

Real HTTP on loopback, the real agent and client; the twin behind the agent is the seeded
simulator so these run in seconds. The same protocol over real FRR is in test_agent_netns.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from twin import get_backend
from twin.agent import AgentRefusal
from twin.remote import AgentError, RemoteBackend
from twin.simulator import SimulatorBackend
from twin.tests.agent_helpers import TOKEN, agent_start, fault_proxy, live_agent, wait_for
from twin.topology import load_lab
from twin.wire import schema_check, topology_from_wire, topology_to_wire

LABS = Path(__file__).resolve().parents[2] / "labs"
TRIANGLE = LABS / "triangle"


def _change(name: str) -> dict:
    return change_load((TRIANGLE / "changes" / f"{name}.yml").read_text(), load_lab(TRIANGLE))


def _torn_down_once(backend: SimulatorBackend) -> bool:
    return all(t.teardown_calls == 1 for t in backend.twins)


# ---------------------------------------------------------------------- same verdict as in-process


@pytest.mark.parametrize("change", ["ship_ready", "prefix_lost", "needs_approval", "rejected_line"])
def test_http_backend_gives_the_same_verdict_as_the_backend_behind_it(change):
    # given a live agent on loopback serving the simulator
    sim = SimulatorBackend()
    with live_agent(sim) as agent:
        # when the same change runs through the agent and in-process
        remote = run_preflight(TRIANGLE, _change(change), backend=RemoteBackend(agent.url, token=TOKEN))
        local = run_preflight(TRIANGLE, _change(change), backend=SimulatorBackend())
        # then verdict, reasons, diff and rollback agree, and the twin was torn down exactly once
        assert remote["verdict"] == local["verdict"]
        assert [r["code"] for r in remote["reasons"]] == [r["code"] for r in local["reasons"]]
        assert remote["diff"] == local["diff"]
        assert remote["twin"]["backend"] == "http" and remote["twin"]["tier"] == "simulated"
        assert _torn_down_once(sim) and len(sim.twins) == 1
        assert agent.agent.status()["twins"] == []


def test_get_backend_http_reads_the_token_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with live_agent(SimulatorBackend()) as agent:
        backend = get_backend("http", url=agent.url, token_file=str(token_file))
        assert backend.health()["tier"] == "simulated"
    with pytest.raises(AgentError, match="AEGIS_TWIN_AGENTS"):
        get_backend("http", token_file=str(token_file))
    with pytest.raises(AgentError, match="cannot read the agent token file"):
        get_backend("http", url="http://127.0.0.1:1", token_file=str(tmp_path / "missing"))


# ---------------------------------------------------------------------- who may call


def test_a_wrong_token_is_refused_and_nothing_spawns():
    sim = SimulatorBackend()
    with live_agent(sim) as agent:
        backend = RemoteBackend(agent.url, token="wrong-token-0000000000")
        with pytest.raises(AgentError, match="401 unauthorized"):
            backend.spawn(load_lab(TRIANGLE), "r1")
        raw = httpx.post(agent.url + "/v1/twins", json={}, headers={"X-Request-Id": "abc"})
        assert raw.status_code == 401 and raw.json()["error"]["code"] == "unauthorized"
        assert sim.spawn_attempts == 0


def test_a_caller_outside_the_allow_list_is_refused():
    sim = SimulatorBackend()
    with live_agent(sim, allow=["10.0.0.0/8"]) as agent:
        with pytest.raises(AgentError, match="403 forbidden.*outside the agent's allowed networks"):
            RemoteBackend(agent.url, token=TOKEN).health()
        assert sim.spawn_attempts == 0


def test_the_client_checks_egress_before_any_socket_opens():
    with live_agent(SimulatorBackend()) as agent:
        seen: list[str] = []
        agent.server.agent.handle = lambda *a, **k: seen.append("request")  # would record any request
        backend = RemoteBackend(agent.url, token=TOKEN, allow=["10.0.0.0/8"])
        with pytest.raises(AgentError, match="egress refused: twin agent to 127.0.0.1"):
            backend.health()
        assert seen == []


# ---------------------------------------------------------------------- leases and capacity


def test_a_twin_whose_caller_stops_renewing_is_torn_down():
    sim = SimulatorBackend()
    with live_agent(sim) as agent:
        backend = RemoteBackend(agent.url, token=TOKEN, lease_s=1.0)
        twin = backend.spawn(load_lab(TRIANGLE), "r1")
        assert twin.converge(10).converged
        # while the caller lives, its renewals keep the twin past several lease periods
        wait_for(lambda: twin._renewer.is_alive() and len(agent.agent.status()["twins"]) == 1, what="renewals")
        renewals_before = len(agent.agent.status()["twins"])
        assert renewals_before == 1
        # when the caller dies (its renewal thread stops), the agent tears the twin down by itself
        twin._stop.set()
        wait_for(lambda: agent.agent.status()["twins"] == [], what="lease expiry")
        assert _torn_down_once(sim)
        with pytest.raises(AgentError, match="404 not_found.*lease expired"):
            twin.snapshot()


CALLER = """
import sys, time
from twin.remote import RemoteBackend
from twin.topology import load_lab
twin = RemoteBackend(sys.argv[1], token=sys.argv[2], allow=["127.0.0.0/8"], lease_s=1.0).spawn(load_lab(sys.argv[3]))
print(twin.twin_id, flush=True)
time.sleep(600)
"""


def test_a_caller_killed_mid_run_loses_its_twin_one_lease_later():
    # given a caller in its own process holding a twin with a 1 s lease
    sim = SimulatorBackend()
    with live_agent(sim) as agent:
        caller = subprocess.Popen([sys.executable, "-c", CALLER, agent.url, TOKEN, str(TRIANGLE)],
                                  stdout=subprocess.PIPE, text=True, cwd=LABS.parent)
        try:
            twin_id = (caller.stdout.readline() if caller.stdout else "").strip()
            assert len(twin_id) == 32, "the caller did not spawn"
            # its renewals keep the twin well past the lease while it lives
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                assert [t["twin_id"] for t in agent.agent.status()["twins"]] == [twin_id]
                time.sleep(0.2)
            # when it is killed (no teardown, its connection gone), the lease runs out and the agent tears down
            os.kill(caller.pid, signal.SIGKILL)
            caller.wait(10)
            wait_for(lambda: agent.agent.status()["twins"] == [], timeout=20, what="lease expiry after the kill")
            assert _torn_down_once(sim) and len(sim.twins) == 1
        finally:
            if caller.poll() is None:
                os.kill(caller.pid, signal.SIGKILL)
                caller.wait(10)
            if caller.stdout:
                caller.stdout.close()


def test_a_spawn_over_the_memory_budget_is_refused_with_the_figures():
    sim = SimulatorBackend()
    with live_agent(sim, budget_mb=50) as agent:
        with pytest.raises(AgentError, match=r"503 capacity: the twin needs ~\d+ MB; this agent has 50 MB free"):
            RemoteBackend(agent.url, token=TOKEN).spawn(load_lab(TRIANGLE), "r1")
        assert sim.spawn_attempts == 0
        assert agent.agent.status()["capacity"]["reserved_mb"] == 0


def test_capacity_is_reserved_while_a_twin_lives_and_returned_at_teardown():
    with live_agent(SimulatorBackend(), budget_mb=1000) as agent:
        twin = RemoteBackend(agent.url, token=TOKEN).spawn(load_lab(TRIANGLE), "r1")
        cap = agent.agent.status()["capacity"]
        assert cap["reserved_mb"] > 3 * 20 and cap["free_mb"] == 1000 - cap["reserved_mb"]
        twin.teardown()
        assert agent.agent.status()["capacity"]["reserved_mb"] == 0


def test_an_agent_without_warm_twins_says_so_and_ends_the_twin_at_keep():
    # given an agent whose twins are simulated (warm twins are for real FRR only: test_agent_netns)
    sim = SimulatorBackend()
    with live_agent(sim, budget_mb=1000) as agent:
        backend = RemoteBackend(agent.url, token=TOKEN)
        assert backend.warm(load_lab(TRIANGLE)) is None  # nothing to lend: the caller spawns
        twin = backend.spawn(load_lab(TRIANGLE), "r1")
        # a body that breaks the schema is refused and the twin stays leased
        bad = _post(agent.url, f"/v1/twins/{twin.twin_id}/keep", b'{"proven": "yes"}')
        assert bad.status_code == 400 and "proven" in bad.json()["error"]["message"]
        # a proven run's end: nothing keeps it here, so the agent tears it down, once
        assert twin.keep(True, after={"nodes": {}}, baseline={"nodes": {}}) is False
        assert _torn_down_once(sim) and agent.agent.status()["twins"] == []
        assert agent.agent.status()["capacity"]["reserved_mb"] == 0
        twin.teardown()  # the pipeline's teardown after keep: nothing more is asked
        assert _torn_down_once(sim)
        gone = _post(agent.url, f"/v1/twins/{twin.twin_id}/keep", b'{"proven": false}')
        assert gone.status_code == 404


def test_an_agent_from_before_warm_twins_still_runs_the_change_cold_and_tears_it_down():
    # given an agent that answers the warm endpoints as v1 agents before them did: no such endpoint
    sim = SimulatorBackend()
    with live_agent(sim) as agent:
        def older(*_args):
            raise AgentRefusal(404, "not_found", "no endpoint (see twin/schema/agent-v1.json)")

        agent.agent.warm = older
        agent.agent.keep = older
        result = run_preflight(TRIANGLE, _change("ship_ready"), backend=RemoteBackend(agent.url, token=TOKEN))
        # then the run is the same cold run as before, and its twin is deleted, once
        assert result["verdict"] == "ship_ready" and result["twin"]["warm"] is False
        assert "TEARDOWN_FAILED" not in [r["code"] for r in result["reasons"]]
        assert _torn_down_once(sim) and agent.agent.status()["twins"] == []


# ---------------------------------------------------------------------- untrusted requests


def _post(url: str, path: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(url + path, content=content, headers={"Authorization": f"Bearer {TOKEN}",
                                                             "Content-Type": "application/json", **headers})


@pytest.mark.parametrize("mutate, code, words", [
    (lambda t: t["nodes"]["r1"].update(daemons=["zebra", "../../../bin/sh"]), "topology_error", "unknown daemons"),
    (lambda t: t["nodes"]["r1"].update(exec=["touch /tmp/pwned"]), "topology_error", "refused"),
    (lambda t: t["nodes"].update({"bad;name": t["nodes"]["r1"]}), "topology_error", "not valid"),
    (lambda t: t["links"][0]["a"].update(iface="a" * 30), "bad_request", "iface"),
    (lambda t: t.update(extra=1), "bad_request", "Additional properties"),
])
def test_a_topology_the_lab_loader_would_refuse_is_refused(mutate, code, words):
    sim = SimulatorBackend()
    with live_agent(sim) as agent:
        topo = topology_to_wire(load_lab(TRIANGLE))
        mutate(topo)
        resp = _post(agent.url, "/v1/twins", json.dumps({"topology": topo}).encode())
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == code and words in resp.json()["error"]["message"]
        assert sim.spawn_attempts == 0


def test_malformed_oversized_and_unknown_requests_get_clear_errors():
    with live_agent(SimulatorBackend()) as agent:
        agent.agent.config.max_request_bytes = 1000
        assert _post(agent.url, "/v1/twins", b"{not json").json()["error"]["code"] == "bad_request"
        big = _post(agent.url, "/v1/twins", b"{" + b" " * 5000 + b"}")
        assert big.status_code == 413 and "over the agent's 1000 limit" in big.json()["error"]["message"]
        assert _post(agent.url, "/v1/nothing", b"{}").status_code == 404
        gone = _post(agent.url, "/v1/twins/" + "a" * 32 + "/snapshot", b"{}")
        assert gone.status_code == 404 and "lease expired" in gone.json()["error"]["message"]
        bad_op = _post(agent.url, "/v1/twins/" + "a" * 32 + "/converge", b'{"timeout": "soon"}')
        assert bad_op.status_code == 400 and "timeout" in bad_op.json()["error"]["message"]


def test_topology_round_trips_through_the_wire():
    topo = load_lab(LABS / "campus")
    again = topology_from_wire(json.loads(json.dumps(topology_to_wire(topo))))
    assert again == topo


# ---------------------------------------------------------------------- a broken agent or network


FAULT_CASES = [
    ("malformed", "snapshot", "not JSON"),
    ("partial", "converge", "cut short"),
    ("slow", "apply", "no answer within"),
    ("oversized", "snapshot", "limit"),
    ("out_of_order", "running-config", "out of order"),
    ("dropped", "converge", "connection broke"),
    ("schema", "snapshot", "malformed or partial answer"),
    ("error_500", "reload", "not JSON"),
]


@pytest.mark.parametrize("fault, op, words", FAULT_CASES, ids=[f"{f}-{o}" for f, o, _ in FAULT_CASES])
def test_a_broken_answer_blocks_the_run_with_the_reason_and_leaves_no_twin(fault, op, words):
    sim = SimulatorBackend()
    with live_agent(sim) as agent, fault_proxy(agent.url, fault, op, slow_s=4.5,
                                               oversized_bytes=2 * 1024 * 1024) as proxy:
        backend = RemoteBackend(proxy.url, token=TOKEN, op_timeout_s=None, max_response_bytes=1024 * 1024)
        if fault == "slow":
            # Every operation gets this deadline; 3 s leaves the ones before `apply` room on a loaded
            # host (1 s failed spawn or converge at load 22), and the slowed answer comes 1.5 s past it.
            backend.client.op_timeout_s = 3.0
        result = run_preflight(TRIANGLE, _change("ship_ready"), backend=backend)
        assert proxy.fired == 1
        assert result["verdict"] == "blocked"
        messages = " | ".join(r["message"] for r in result["reasons"])
        assert "STEP_FAILED" in [r["code"] for r in result["reasons"]], messages
        assert words in messages and "twin agent" in messages
        # the pipeline's teardown went through: nothing is left on the agent
        wait_for(lambda: agent.agent.status()["twins"] == [], what="teardown")
        assert _torn_down_once(sim)


@pytest.mark.parametrize("fault", ["dropped", "malformed", "partial"])
def test_a_spawn_whose_answer_is_lost_is_reaped_when_its_lease_runs_out(fault):
    # given an agent that spawned the twin but whose answer never reached the caller
    sim = SimulatorBackend()
    with live_agent(sim) as agent, fault_proxy(agent.url, fault, "spawn") as proxy:
        result = run_preflight(TRIANGLE, _change("ship_ready"),
                               backend=RemoteBackend(proxy.url, token=TOKEN, lease_s=1.0))
        # then the run is blocked with the reason, and the lease brings the orphan down
        assert result["verdict"] == "blocked"
        assert result["reasons"][0]["code"] == "SPAWN_FAILED"
        assert "twin agent" in result["reasons"][0]["message"]
        wait_for(lambda: len(sim.twins) == 1 and agent.agent.status()["twins"] == [], what="lease expiry")
        assert _torn_down_once(sim)


def test_an_agent_restart_mid_run_blocks_the_run_and_the_old_twin_is_gone():
    first_backend, second_backend = SimulatorBackend(), SimulatorBackend()
    agent = agent_start(first_backend)
    port = agent.server.server_address[1]
    holder = {"agent": agent}

    def restart_at_apply(step: str, status: str, message: str, data: dict) -> None:
        if step == "apply" and status == "started":
            holder["agent"].stop()  # tears down what it held, as a SIGTERM'd agent does
            holder["agent"] = agent_start(second_backend, port=port)

    try:
        result = run_preflight(TRIANGLE, _change("ship_ready"), backend=RemoteBackend(agent.url, token=TOKEN),
                               progress=restart_at_apply)
    finally:
        holder["agent"].stop()
    assert result["verdict"] == "blocked"
    messages = " | ".join(r["message"] for r in result["reasons"])
    assert "the agent restarted mid-run" in messages
    assert _torn_down_once(first_backend) and second_backend.twins == []


# ---------------------------------------------------------------------- recorded real answers

RECORDED = Path(__file__).with_name("fixtures") / "agent-v1"


def _recorded(name: str) -> dict:
    return json.loads((RECORDED / f"{name}.json").read_text())


def test_recorded_real_answers_follow_the_schema():
    # Recorded from a real agent over real FRR by twin/tests/record_agent_v1.py.
    files = sorted(RECORDED.glob("*.json"))
    assert {p.stem for p in files} >= {"health", "status", "spawn", "converge", "snapshot", "apply", "reload",
                                       "reach", "reachability", "running_config", "renew", "teardown"}
    for path in files:
        doc = json.loads(path.read_text())
        schema_check(doc["definition"], doc["response"])
        if doc["request"] is not None:
            schema_check(doc["definition"].replace("_response", "_request"), doc["request"])


class _ReplayHandler(BaseHTTPRequestHandler):
    """Answers every request with the recorded real answer of its operation."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _answer(self) -> None:
        if self.headers.get("Content-Length"):
            self.rfile.read(int(self.headers["Content-Length"]))
        path = self.path
        if path in ("/v1/health", "/v1/status"):
            name = path.rsplit("/", 1)[1]
        elif path == "/v1/twins":
            name = "spawn"
        elif self.command == "DELETE":
            name = "teardown"
        else:
            name = path.rsplit("/", 1)[1].replace("-", "_")
        doc = dict(_recorded(name)["response"], request_id=self.headers["X-Request-Id"])
        data = json.dumps(doc).encode()
        self.send_response(201 if name == "spawn" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer  # noqa: N815


def test_the_client_reads_recorded_real_answers():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ReplayHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        backend = RemoteBackend(f"http://127.0.0.1:{server.server_address[1]}", token=TOKEN)
        assert backend.health()["tier"] == "real"
        events: list[tuple[str, str]] = []
        twin = backend.spawn(load_lab(TRIANGLE), "replay", lambda s, st, m, d: events.append((s, st)))
        assert twin.facts["backend"] == "http" and twin.facts["agent_backend"] == "netns"
        assert twin.facts["frr_version"] and ("spawn", "ok") in events
        conv = twin.converge(60)
        assert conv.converged and conv.seconds > 0
        snap = twin.snapshot()
        assert set(snap["nodes"]) == {"r1", "r2", "r3"} and all(snap["reachability"]["pairs"].values())
        assert twin.running_config("r3").startswith("frr version")
        applied = twin.apply("r3", "ip prefix-list X seq 5 permit 10.9.0.0/16\nbogus line\n")
        assert applied.applied == ["ip prefix-list X seq 5 permit 10.9.0.0/16"]
        assert [(r.line, r.line_no) for r in applied.rejected] == [("bogus line", 2)]
        reload = twin.reload_config("r3", "...", test_only=True)
        assert reload.applied is False and reload.lines_to_delete == reload.lines_to_add == []  # same config
        assert twin.reach("r1", "10.255.0.3") is True
        twin.teardown()
    finally:
        server.shutdown()
        server.server_close()
