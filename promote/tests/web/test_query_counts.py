"""The list pages and their API counterparts cost a fixed number of queries, whatever the rows.

A page that reads a deferred column or a relation per row (an N+1) makes one query more per
row: each test counts the queries of a page with a few rows, adds more rows (with decisions
on some of them), counts again and asserts the same count, under a ceiling. Speed itself is
measured by benchmarks/web_load.py, never here.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm

from evidence.models import Bundle
from preflight.models import ChangeRequest, PreflightRun
from preflight.tests.web.fixtures import NEEDS_APPROVAL
from promote.models import Approval

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(operator, approver, approver2, auditor, submit):
    """One real simulator run that needs approval, and `more(n)` to clone it n times."""
    template = submit(operator, NEEDS_APPROVAL, title="template")
    assert template.verdict == "needs_approval" and template.bundle_digest
    bundle = Bundle.objects.get(run_id=template.run_id)
    approvers = Group.objects.get(name="approver")
    state = {"n": 0}

    def more(n: int) -> None:
        for _ in range(n):
            state["n"] += 1
            i = state["n"]
            change = ChangeRequest.objects.create(
                operator=operator, lab=template.change.lab, title=f"clone {i}", devices=template.change.devices,
                frameworks=template.change.frameworks,
            )
            run = PreflightRun.objects.create(
                change=change, backend=template.backend, status=template.status, verdict=template.verdict,
                # every other run high risk with one approval of two: still waiting, with a decision
                risk_tier="high" if i % 2 else template.risk_tier, risk_score=template.risk_score, result=template.result,
                blast=template.blast, last_seq=template.last_seq, bundle_digest=f"sha256:{i:064x}",
            )
            assign_perm("preflight.view_preflightrun", operator, run)
            assign_perm("preflight.view_preflightrun", approvers, run)
            row = Bundle.objects.create(
                run_id=run.run_id, digest=run.bundle_digest, verdict=bundle.verdict, tier=bundle.tier,
                lab_name=bundle.lab_name, operator_username=bundle.operator_username,
                frameworks=bundle.frameworks, keyid=bundle.keyid, ledger_index=10_000 + i,
                bundle_json=bundle.bundle_json,
            )
            assign_perm("evidence.view_bundle", operator, row)
            if i % 2:  # the queue and the approval state read the decisions
                Approval.objects.create(run=run, approver=approver2, decision="approve", subject_digest=run.bundle_digest)

    more(2)
    return {"run": template, "more": more}


def _count(user, path: str) -> int:
    client = Client()
    client.force_login(user)
    client.get(path)  # first request of a process: content types and such are cached
    with CaptureQueriesContext(connection) as ctx:
        answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    ("who", "path", "ceiling"),
    [
        ("approver", "/promote/queue/", 6),  # session, user, groups, waiting runs with decisions, rows, history
        ("approver", "/api/approvals/queue", 6),
        ("operator", "/preflight/", 9),
        ("operator", "/api/runs", 8),
        ("auditor", "/evidence/bundles/", 10),
        ("auditor", "/api/bundles", 8),
    ],
)
def test_a_list_costs_the_same_queries_with_more_rows(seeded, request, who, path, ceiling):
    user = request.getfixturevalue(who)
    few = _count(user, path)
    seeded["more"](6)
    many = _count(user, path)
    assert many == few, f"{path}: {few} queries with 3 runs, {many} with 9 (a query per row)"
    assert many <= ceiling, f"{path}: {many} queries, more than {ceiling}"


@pytest.mark.parametrize("page", ["/preflight/runs/{run_id}/", "/api/runs/{run_id}"])
def test_the_run_page_costs_the_same_queries_with_more_events_and_decisions(
    seeded, operator, approver2, page
):
    from preflight.services import event_append

    run = seeded["run"]
    path = page.format(run_id=run.run_id)
    few = _count(operator, path)
    for i in range(5):
        event_append(run=run, step="bench", status="info", message=f"extra event {i}")
    Approval.objects.create(run=run, approver=approver2, decision="approve", subject_digest=run.bundle_digest)
    many = _count(operator, path)
    assert many == few, f"{path}: {few} queries, then {many} with more events and a decision"
    assert many <= 9
