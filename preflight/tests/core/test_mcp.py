"""The MCP server (`manage.py mcp`), driven by the official SDK's own client over stdio.

Given an agent connected over stdio, when it lists tools, dry-runs a change (config lines or desired
configs), asks for a result, or sends what the guards refuse, then: only the three tools exist (no
promotion), every dry run is an ordinary sealed run with `change.source = "agent"`, refusals come back
as tool errors with the guard's words and nothing runs, and the answer holds no lab or daemon text.
The simulator backend for most; one real twin (FRR in namespaces) for a desired-state dry run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from mcp import Client, StdioServerParameters

from aegis_base.models import AuditEntry
from evidence.models import Bundle
from preflight.models import PreflightRun

from .conftest import real_twin_possible, twin_leftovers
from .examples import LABS

REPO = LABS.parent
pytestmark = pytest.mark.django_db(transaction=True)
R3 = (LABS / "triangle" / "r3" / "frr.conf").read_text()
R3_ANNOUNCING = (R3.replace(" network 192.0.2.0/24\n", " network 192.0.2.0/24\n  network 198.51.100.0/24\n")
                 .replace("ip route 192.0.2.0/24 Null0\n", "ip route 192.0.2.0/24 Null0\nip route 198.51.100.0/24 Null0\n"))


def _server(tmp_path: Path, backend: str, **extra_env: str) -> StdioServerParameters:
    if connection.vendor != "postgresql":
        pytest.skip("the MCP server runs in another process: it needs the PostgreSQL test database")
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "DATABASE_URL"))}
    env.update({
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "AEGIS_HOME": str(tmp_path / "home"), "AEGIS_RUNS_DIR": str(tmp_path / "runs"),
        "AEGIS_SITE_KEY_FILE": str(tmp_path / "home" / "keys" / "site_ed25519.pem"),
        "AEGIS_LABS_DIR": str(LABS),
        **extra_env,
    })
    return StdioServerParameters(command=sys.executable, args=["manage.py", "mcp", "--backend", backend],
                                 env=env, cwd=str(REPO))


def _session(params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async def go() -> list[Any]:
        async with Client(params, read_timeout_seconds=600) as client:
            out: list[Any] = [await client.list_tools()]
            for name, args in calls:
                out.append(await client.call_tool(name, args))
            return out
    return asyncio.run(go())


def test_agent_dry_runs_through_the_one_run_path_and_sees_only_normalised_results(tmp_path: Path) -> None:
    tools, labs, lines_run, refused, both, desired_run, unknown = _session(_server(tmp_path, "simulator"), [
        ("labs", {}),
        ("dry_run", {"lab": "triangle", "title": "announce a test prefix",
                     "lines": {"r3": "ip route 198.51.100.0/24 Null0\nrouter bgp 65003\n address-family ipv4 unicast\n"
                                     "  network 198.51.100.0/24\n"}}),
        ("dry_run", {"lab": "triangle", "title": "sneaky", "lines": {"r3": "ip route 10.9.9.0/24 Null0\ndo show run"}}),
        ("dry_run", {"lab": "triangle", "title": "both", "lines": {"r3": "ip route 10.9.9.0/24 Null0"},
                     "desired": {"r3": R3_ANNOUNCING}}),
        ("dry_run", {"lab": "triangle", "title": "as a desired config", "desired": {"r3": R3_ANNOUNCING}}),
        ("result", {"run_id": "20990101-000000-000000"}),
    ])
    assert sorted(t.name for t in tools.tools) == ["dry_run", "labs", "result"]  # no way to promote
    assert "triangle" in [lab["name"] for lab in labs.structured_content["labs"]]

    view = lines_run.structured_content
    assert not lines_run.is_error and view["verdict"] in ("ship_ready", "needs_approval")
    assert view["bundle_digest"].startswith("sha256:") and view["source"] == "agent"
    assert {"intended": True, "kind": "route_added", "node": "r3", "key": "198.51.100.0/24", "loss": False} \
        in view["effects"]
    assert view["rollback"]["verified"] and "no ip route 198.51.100.0/24 Null0" in view["rollback"]["lines"]["r3"]
    run = PreflightRun.objects.get(run_id=view["run_id"])
    assert run.change.source == "agent" and run.result["change"]["source"] == "agent"
    assert Bundle.objects.get(run_id=run.run_id).digest == view["bundle_digest"]
    assert AuditEntry.objects.filter(action="run.submit", target=f"run:{run.run_id}", detail__via="mcp").exists()
    assert "frr_said" not in json.dumps(view) and "snapshots" not in view  # normalised, not the raw result

    assert refused.is_error and "`do` is not allowed" in refused.content[0].text
    assert both.is_error and "exactly one of" in both.content[0].text
    assert PreflightRun.objects.count() == 2  # the refusals wrote nothing

    dview = desired_run.structured_content
    assert not desired_run.is_error and dview["verdict"] in ("ship_ready", "needs_approval")
    stored = PreflightRun.objects.get(run_id=dview["run_id"])
    assert stored.change.desired["nodes"]["r3"]["add"][-1] == "ip route 198.51.100.0/24 Null0"
    assert stored.result["change"]["desired"]["method"] == "frr-reload"

    assert unknown.is_error and "no run" in unknown.content[0].text


def test_result_tool_returns_an_earlier_run(tmp_path: Path) -> None:
    params = _server(tmp_path, "simulator")
    _, first = _session(params, [("dry_run", {"lab": "triangle", "title": "t",
                                              "lines": {"r3": "ip route 198.51.100.0/24 Null0"}})])
    _, again = _session(params, [("result", {"run_id": first.structured_content["run_id"]})])
    assert again.structured_content == first.structured_content


@pytest.mark.twin
@pytest.mark.slow
@pytest.mark.skipif(real_twin_possible() is not None, reason=str(real_twin_possible()))
def test_agent_dry_run_of_a_desired_config_on_a_real_twin(tmp_path: Path) -> None:
    # No failure scenarios: this is about the agent's path and frr-reload's lines on real FRR, and the
    # N-1 scenarios would more than double the twin time (they have their own tests).
    _, answer = _session(_server(tmp_path, "netns", AEGIS_FAILURE_SCENARIOS_MAX="0"), [
        ("dry_run", {"lab": "triangle", "title": "r3 announces 198.51.100.0/24", "desired": {"r3": R3_ANNOUNCING}})])
    view = answer.structured_content
    assert not answer.is_error, answer.content
    assert view["twin_tier"] == "real" and view["verdict"] in ("ship_ready", "needs_approval"), view["reasons"]
    assert {"intended": True, "kind": "route_added", "node": "r1", "key": "198.51.100.0/24", "loss": False} \
        in view["effects"]
    assert view["rollback"]["verified"] and view["bundle_digest"]
    run = PreflightRun.objects.get(run_id=view["run_id"])
    ledger = run.result["apply"]["ledger"]
    assert ledger["summary"]["not_applied"] == 0 and ledger["summary"]["rejected"] == 0  # frr-reload's lines took
    prefix = (run.result["twin"].get("facts") or {}).get("namespace_prefix") or ""
    assert prefix and twin_leftovers(prefix) == []
