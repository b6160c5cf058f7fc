"""The twin agent over real FRR: `manage.py twin_agent` as its own process, the `http` backend in the pipeline.

Few and real (CI cost): one change through netns and through the agent must give the same
verdict; an agent killed with SIGKILL mid-run blocks the run, and the next agent reaps its twin.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from twin import runstate
from twin.remote import RemoteBackend
from twin.tests.agent_helpers import TOKEN, wait_for
from twin.tests.conftest import requires_netns
from twin.topology import load_lab

REPO = Path(__file__).resolve().parents[2]
TRIANGLE = REPO / "labs" / "triangle"
pytestmark = [pytest.mark.twin, pytest.mark.slow, requires_netns]


def _twin_dirs(owner: int) -> set[str]:
    """Run folders of twins spawned by process `owner` (other engineers' twins share this host)."""
    if not runstate.RUN_ROOT.is_dir():
        return set()
    return {p.name for p in runstate.RUN_ROOT.iterdir()
            if (state := runstate.state_read(p)) is not None and state.get("owner_pid") == owner}


class AgentProcess:
    """`manage.py twin_agent --listen 127.0.0.1:PORT` as a child process (killed by its PID only)."""

    def __init__(self, token_file: Path, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "twin_agent", "--listen", f"127.0.0.1:{port}",
             "--token-file", str(token_file), "--budget-mb", "4000", "--lease-s", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        seen = []
        line = ""
        while self.proc.stdout and "listening on" not in line:
            line = self.proc.stdout.readline()  # log lines (e.g. what it reaped) come first
            seen.append(line)
            if not line:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"the agent did not start: {''.join(seen)}")
        self.output = seen
        # Keep draining its output so a chatty agent never blocks on a full pipe.
        threading.Thread(target=lambda: [seen.append(x) for x in self.proc.stdout or []], daemon=True).start()
        self.port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        self.proc.wait(60)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.token"
    path.write_text(TOKEN)
    path.chmod(0o600)
    return path


def _change(name: str) -> dict:
    return change_load((TRIANGLE / "changes" / f"{name}.yml").read_text(), load_lab(TRIANGLE))


def test_the_agent_gives_the_same_verdict_as_netns(token_file):
    # given the triangle and a change that must ship (the whole pipeline: diff, rollback, S2 == S0)
    agent = AgentProcess(token_file)
    try:
        # one failure scenario (a link down, set through the agent) rather than every one: CI time
        remote = run_preflight(TRIANGLE, _change("prefix_lost"), backend=RemoteBackend(agent.url, token=TOKEN),
                               failures=1)
    finally:
        agent.stop()
    local = run_preflight(TRIANGLE, _change("prefix_lost"), backend="netns", failures=1)
    # then the verdict, its reasons and the state diff agree
    assert remote["verdict"] == local["verdict"] == "blocked"
    assert sorted(r["code"] for r in remote["reasons"]) == sorted(r["code"] for r in local["reasons"])
    assert remote["diff"] == local["diff"]
    scen = [(r["name"], r["lost"]) for r in remote["resilience"]["scenarios"]]
    assert len(scen) == 1 and scen == [(r["name"], r["lost"]) for r in local["resilience"]["scenarios"]]
    assert remote["twin"]["backend"] == "http" and remote["twin"]["tier"] == "real"
    assert remote["twin"]["frr_version"] == local["twin"]["frr_version"]
    assert _twin_dirs(agent.proc.pid) == set()


def test_an_agent_killed_mid_run_blocks_the_run_and_the_next_agent_reaps_its_twin(token_file):
    agent = AgentProcess(token_file)
    port = agent.port
    spawned: dict[str, set[str]] = {}

    def kill_after_baseline(step: str, status: str, message: str, data: dict) -> None:
        if step == "snapshot_baseline" and status == "ok":
            spawned["dirs"] = _twin_dirs(agent.proc.pid)
            agent.stop(signal.SIGKILL)  # no chance to tear anything down

    result = run_preflight(TRIANGLE, _change("ship_ready"), backend=RemoteBackend(agent.url, token=TOKEN),
                           progress=kill_after_baseline)
    assert result["verdict"] == "blocked"
    messages = " | ".join(r["message"] for r in result["reasons"])
    assert "cannot reach the agent" in messages or "connection broke" in messages, messages
    assert len(spawned["dirs"]) == 1  # the agent's twin outlived it ...
    assert spawned["dirs"] <= _twin_dirs(agent.proc.pid)
    # ... until an agent starts again on the host: it reaps twins whose owner died
    again = AgentProcess(token_file, port=port)
    try:
        # its twin among those reaped (another dead owner's twin on a shared host may be reaped too)
        run_id = next(iter(spawned["dirs"])).removeprefix("aegis-")
        assert any("reaped" in line and run_id in line for line in again.output), again.output
        wait_for(lambda: not (spawned["dirs"] & _twin_dirs(agent.proc.pid)), timeout=60, what="reaping at agent start")
        prefix = f"aegis-{next(iter(spawned['dirs'])).removeprefix('aegis-')}-"
        assert not [ns for ns in os.listdir(runstate.NETNS_DIR) if ns.startswith(prefix)]
    finally:
        again.stop()


def test_the_agent_keeps_a_twin_whose_rollback_was_proven_warm_for_the_next_run(token_file):
    # given an agent with a warm budget (AEGIS_WARM_TWINS_MB's default) and a change that ships
    agent = AgentProcess(token_file)
    try:
        backend = RemoteBackend(agent.url, token=TOKEN)
        cold = run_preflight(TRIANGLE, _change("ship_ready"), backend=backend, failures="none")
        # then the agent kept the twin after the proven rollback, and says so
        held = backend.status()["warm"]["twins"]
        assert [(t["lab"], t["uses"], t["leased"]) for t in held] == [("triangle", 1, False)]
        warm = run_preflight(TRIANGLE, _change("ship_ready"), backend=backend, failures="none")
        status = backend.status()
        # A caller's word alone never keeps a changed twin: the lent twin with a link still down ...
        lent = backend.warm(load_lab(TRIANGLE))
        assert lent is not None and lent.warm["uses"] == 3
        lent.set_link("r1", "eth1", False)
        assert lent.keep(True, after=lent.warm["snapshot"]) is False
        # ... nor a cold twin whose state is not the baseline the caller reports.
        cold_twin = backend.spawn(load_lab(TRIANGLE))
        claimed = {"nodes": {}}
        assert cold_twin.keep(True, after=claimed, baseline=claimed) is False
        after_lies = backend.status()
    finally:
        agent.stop()
    assert cold["verdict"] == warm["verdict"] == "ship_ready"
    assert cold["twin"]["warm"] is False and cold["twin"]["pool"]["kept"] is True
    # the second run took that twin: its baseline is the one the agent's pool verified just now
    assert warm["twin"]["warm"] is True and warm["twin"]["pool"]["uses"] == 2
    assert warm["twin"]["pool"]["pool_baseline_digest"] == held[0]["baseline_digest"]
    assert warm["diff"] == cold["diff"] and warm["rollback"]["verified"] is True
    assert [t["uses"] for t in status["warm"]["twins"]] == [2] and status["twins"] == []
    # both refused twins were torn down, the lent one out of the pool too
    assert after_lies["warm"]["twins"] == [] and after_lies["twins"] == []
    assert after_lies["capacity"]["reserved_mb"] == 0
    # and an agent that stops tears its warm twins down too
    assert _twin_dirs(agent.proc.pid) == set()
