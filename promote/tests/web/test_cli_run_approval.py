"""A change preflighted from the command line is a run like any other: it waits in the approvers'
queue, is approved through the API, and its bundle goes to the promotion gate.

The run is on the simulator (fast), so the gate refuses it at G2 only because simulated evidence
is never promotable; G1 (integrity) and G3 (the approval) pass. The same path on a real twin and
a real "production" FRR network is test_promotion_e2e.py::test_a_cli_run_is_approved_and_promoted.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from aegis_base.models import AuditEntry
from evidence.models import Bundle
from preflight.models import PreflightRun
from preflight.tests.web.fixtures import REPO
from promote.models import PromotionRecord, SignedApproval

pytestmark = pytest.mark.django_db

CHANGE = """title: Route to r1's loopback via r2
devices:
  r3: |
    ip route 10.255.0.1/32 10.0.23.0
"""


def preflight_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as ended:
        call_command("preflight", *map(str, args), stdout=out, stderr=err)
    return ended.value.code, out.getvalue(), err.getvalue()


def test_a_cli_run_that_needs_approval_is_queued_approved_and_gated(operator, approver, tmp_path, capsys):
    change = tmp_path / "change.yml"
    change.write_text(CHANGE)
    # given a change preflighted on the command line by the operator
    code, out, _ = preflight_cli(REPO / "labs" / "triangle", "--change", change, "--backend", "simulator",
                                 "--operator", operator.username, "--out", tmp_path / "run")
    assert code == 10 and "verdict: needs_approval" in out, out
    run = PreflightRun.objects.get()
    # then it is a row with its events, its audit entry, its files and its seal, like a web run
    assert (run.status, run.verdict, run.change.operator) == ("finished", "needs_approval", operator)
    assert run.change.source == "file" and "ip route 10.255.0.1/32" in run.change.change_text
    steps = list(run.events.order_by("seq").values_list("step", flat=True))
    assert steps[0] == "queued" and "spawn" in steps and steps[-2:] == ["seal", "run"]
    assert AuditEntry.objects.filter(action="run.submit", target=f"run:{run.run_id}", actor=operator).exists()
    assert AuditEntry.objects.get(action="run.submit").detail["via"] == "cli"
    bundle = Bundle.objects.get(run_id=run.run_id)
    assert run.bundle_digest == bundle.digest and f"sealed: {bundle.digest}" in out
    assert json.loads((tmp_path / "run" / "result.json").read_text())["run_id"] == run.run_id

    # when the approver opens the queue, the run is there
    api = APIClient()
    api.force_authenticate(approver)
    queue = api.get("/api/approvals/queue").json()
    assert [r["run_id"] for r in queue] == [run.run_id]
    # and approves it through the API
    decided = api.post(f"/api/runs/{run.run_id}/approvals", {"decision": "approve", "comment": "Checked."},
                       format="json")
    assert decided.status_code == 201, decided.content
    assert api.get("/api/approvals/queue").json() == []
    assert api.get(f"/api/runs/{run.run_id}").json()["approval_state"] == "approved"

    # then the signed approval and the bundle go to the promotion gate (dry-run, the default)
    approval = tmp_path / "approval.json"
    approval.write_text(json.dumps(SignedApproval.objects.get().envelope))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "devices:\n  r3: {host: 127.0.0.1, port: 2203, username: aegis, key_file: /nonexistent/id_ed25519}\n"
    )
    with pytest.raises(SystemExit) as ended:
        call_command("promote", bundle.json_path, "--approval", approval, "--inventory", inventory)
    captured = capsys.readouterr()
    gate_out = captured.out + captured.err
    assert ended.value.code != 2, gate_out
    record = PromotionRecord.objects.get()
    checks = {c["gate"]: c for c in record.record["gate"]["checks"]}
    assert ended.value.code == 1 and record.mode == "dry-run" and record.outcome == "refused", gate_out
    assert checks["G1"]["passed"] and checks["G3"]["passed"], checks
    assert not checks["G2"]["passed"] and "simulat" in json.dumps(checks["G2"])
