"""`manage.py preflight --backend http --agent URL --agent-token-file FILE` against a real agent process.

The agent is `manage.py twin_agent` started as its own process on loopback; it serves the
simulator here (no root, seconds), the real-FRR version is twin/tests/test_agent_netns.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from .examples import LABS

TRIANGLE = LABS / "triangle"
CHANGES = TRIANGLE / "changes"
REPO = Path(__file__).resolve().parents[3]
TOKEN = "cli-test-token-0123456789abcdef"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_evidence_home(settings, tmp_path):
    settings.AEGIS_HOME = tmp_path / "home"
    settings.AEGIS_SITE_KEY_FILE = tmp_path / "home" / "keys" / "site_ed25519.pem"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    token_file = tmp_path / "agent.token"
    token_file.write_text(TOKEN)
    proc = subprocess.Popen([sys.executable, str(REPO / "manage.py"), "twin_agent", "--backend", "simulator",
                             "--listen", "127.0.0.1:0", "--token-file", str(token_file), "--budget-mb", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        line = ""
        while proc.stdout and "listening on" not in line:
            line = proc.stdout.readline()
            assert line, "the agent did not start"
        port = line.split("listening on ")[1].split()[0].rsplit(":", 1)[1]
        yield f"http://127.0.0.1:{port}", token_file
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()


def preflight(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("preflight", *args, stdout=out, stderr=err)
    return exit_.value.code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name, code, verdict", [("ship_ready", 0, "ship_ready"), ("session_lost", 20, "blocked")])
def test_preflight_through_a_remote_agent(agent, tmp_path, name, code, verdict):
    url, token_file = agent
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / f"{name}.yml"), "--backend", "http",
                           "--agent", url, "--agent-token-file", str(token_file), "--out", str(tmp_path / "run"),
                           "--no-seal")
    assert rc == code, out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["verdict"] == verdict and result["twin"]["backend"] == "http"


def test_http_backend_without_an_agent_or_token_is_an_input_error(agent, tmp_path, settings):
    settings.AEGIS_TWIN_AGENTS = []
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "http",
                           "--no-seal", "--json")
    assert rc == 2 and "needs an agent: --agent" in json.loads(out)["message"]
    settings.AEGIS_AGENT_TOKEN_FILE = ""
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "http",
                           "--agent", agent[0], "--no-seal", "--json")
    assert rc == 2 and "AEGIS_AGENT_TOKEN_FILE" in json.loads(out)["message"]


def test_a_wrong_token_blocks_the_run_with_the_agents_refusal(agent, tmp_path):
    bad = tmp_path / "bad.token"
    bad.write_text("not-the-token-at-all-0000")
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "http",
                           "--agent", agent[0], "--agent-token-file", str(bad), "--no-seal", "--json")
    result = json.loads(out)
    assert rc == 20 and result["verdict"] == "blocked"
    assert result["reasons"][0]["code"] == "SPAWN_FAILED" and "401 unauthorized" in result["reasons"][0]["message"]
