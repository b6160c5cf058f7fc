"""List filters of the API (django-filter filtersets): they narrow what the user may see, never widen it."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from preflight.tests.web.fixtures import BLOCKED, NEEDS_APPROVAL, SHIP_READY
from promote.services import approval_decide

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_runs_filter_by_verdict_and_lab_within_what_the_user_sees(submit, operator, operator2):
    # given runs of two operators with every verdict
    mine = {v: submit(operator, change).run_id for v, change in
            (("ship_ready", SHIP_READY), ("needs_approval", NEEDS_APPROVAL), ("blocked", BLOCKED))}
    submit(operator2, SHIP_READY)
    api = client_for(operator)
    # when the operator filters, then only their own runs with that verdict come back
    assert [r["run_id"] for r in api.get("/api/runs?verdict=blocked").json()] == [mine["blocked"]]
    assert {r["run_id"] for r in api.get("/api/runs?lab=triangle&status=finished").json()} == set(mine.values())
    assert api.get("/api/runs?lab=nowhere").json() == []
    # and a value that is not a choice is a 400 naming the field
    bad = api.get("/api/runs?verdict=maybe")
    assert bad.status_code == 400 and "verdict" in bad.json()


def test_decisions_filter_by_decision_and_approver(submit, operator, approver, approver2):
    run = submit(operator, NEEDS_APPROVAL)
    approval_decide(run=run, approver=approver, decision="reject", comment="Not this week.")
    api = client_for(approver2)
    assert [a["approver"] for a in api.get(f"/api/runs/{run.run_id}/approvals?decision=reject").json()] == ["alice"]
    assert api.get(f"/api/runs/{run.run_id}/approvals?decision=approve").json() == []
    assert api.get(f"/api/runs/{run.run_id}/approvals?approver=arnold").json() == []
    assert api.get(f"/api/runs/{run.run_id}/approvals?decision=perhaps").status_code == 400
