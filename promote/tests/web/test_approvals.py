"""Approval decisions: separation of duties enforced in the service, recorded, audited, ledgered."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from aegis_base.models import AuditEntry
from evidence.models import Bundle, LedgerEntry
from preflight.models import RunEvent
from preflight.selectors import approval_queue, run_approval_state
from preflight.tests.web.fixtures import NEEDS_APPROVAL, SHIP_READY
from promote.models import Approval
from promote.services import DecisionInvalid, DecisionRefused, approval_decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(operator, submit):
    run = submit(operator, NEEDS_APPROVAL)
    assert run.verdict == "needs_approval" and run.risk_tier == "medium"
    return run


def test_an_approval_is_recorded_audited_ledgered_and_streamed(
    waiting, approver, django_capture_on_commit_callbacks
):
    # given a run waiting for approval, when an approver approves with a comment
    leaves = LedgerEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True):  # the PDF refresh runs after commit
        approval = approval_decide(
            run=waiting, approver=approver, decision="approve", comment="Route is expected."
        )
    # then the decision row binds to the sealed digest, the audit trail and ledger have it,
    # the run's watchers get an event, and the run leaves the queue
    assert approval.subject_digest == waiting.bundle_digest
    assert AuditEntry.objects.filter(
        action="approval.approve", actor=approver, target=f"run:{waiting.run_id}"
    ).exists()
    assert LedgerEntry.objects.count() == leaves + 1
    assert LedgerEntry.objects.order_by("-index").first().kind == "approval"
    event = RunEvent.objects.filter(run=waiting, step="approval").get()
    assert event.data == {"decision": "approve", "state": "approved"}
    assert run_approval_state(waiting) == "approved"
    assert approval_queue(approver) == []
    # and the examiner PDF now names the approver and the decision
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(Bundle.objects.get(run_id=waiting.run_id).pdf_path).pages)
    assert "approved by alice" in text


def test_an_approver_never_decides_on_their_own_change(approver, lab, submit):
    # given a user who is both operator and approver, when she tries to approve her own run
    approver.groups.add(Group.objects.get(name="operator"))
    run = submit(approver, NEEDS_APPROVAL)
    with pytest.raises(DecisionRefused, match="separation of duties"):
        approval_decide(run=run, approver=approver, decision="approve", comment="LGTM")
    # then nothing is recorded but the refusal itself, and her own run is not in her queue
    assert Approval.objects.count() == 0
    assert AuditEntry.objects.filter(action="approval.refused", actor=approver).exists()
    assert approval_queue(approver) == []


def test_the_refusal_holds_through_the_page_and_the_api(approver, submit):
    approver.groups.add(Group.objects.get(name="operator"))
    run = submit(approver, NEEDS_APPROVAL)
    client = Client()
    client.force_login(approver)
    page = client.post(f"/promote/runs/{run.run_id}/", {"decision": "approve", "comment": "mine"})
    api = client.post(
        f"/api/runs/{run.run_id}/approvals",
        {"decision": "approve", "comment": "mine"},
        content_type="application/json",
    )
    assert page.status_code == 400 and "separation of duties" in page.content.decode()
    assert api.status_code == 403 and "separation of duties" in api.json()["detail"]
    assert Approval.objects.count() == 0


@pytest.mark.parametrize(
    "decision, comment, field", [("approve", "  ", "comment"), ("ship-it", "ok", "decision")]
)
def test_a_malformed_decision_is_refused_with_the_field(waiting, approver, decision, comment, field):
    with pytest.raises(DecisionInvalid) as caught:
        approval_decide(run=waiting, approver=approver, decision=decision, comment=comment)
    assert caught.value.field == field
    assert Approval.objects.count() == 0


def test_one_rejection_ends_it_and_nobody_decides_twice(waiting, approver, approver2):
    approval_decide(run=waiting, approver=approver, decision="reject", comment="No change window today.")
    with pytest.raises(DecisionRefused, match="already decided"):
        approval_decide(run=waiting, approver=approver, decision="approve", comment="changed my mind")
    with pytest.raises(DecisionRefused, match="already rejected"):
        approval_decide(run=waiting, approver=approver2, decision="approve", comment="ok")
    assert run_approval_state(waiting) == "rejected"


def test_a_high_risk_change_needs_two_approvers(operator, approver, approver2, submit):
    run = submit(
        operator, {"devices": {"r1": "ip route 10.255.0.3/32 10.0.12.1\n"}, "expect": None}
    )  # r1 is critical, and the route replaces a BGP path nobody declared (risk-rubric/2: 1 + 3 + 3)
    assert run.risk_tier == "high"
    approval_decide(run=run, approver=approver, decision="approve", comment="first look")
    assert run_approval_state(run) == "pending"
    assert [r.run_id for r in approval_queue(approver2)] == [run.run_id]
    approval_decide(run=run, approver=approver2, decision="approve", comment="second look")
    assert run_approval_state(run) == "approved"


def test_runs_that_need_no_approval_cannot_be_decided(operator, approver, submit):
    run = submit(operator, SHIP_READY)
    with pytest.raises(DecisionRefused, match="only runs that need approval"):
        approval_decide(run=run, approver=approver, decision="approve", comment="ok")


def test_the_queue_is_oldest_first_with_risk_and_blast_radius(operator, operator2, approver, submit):
    first = submit(operator, NEEDS_APPROVAL, title="first")
    second = submit(
        # a static route replacing r2's BGP path to r1's loopback: an effect beyond the line's intent
        operator2, {"devices": {"r2": "ip route 10.255.0.1/32 10.0.12.0\n"}, "expect": None}, title="second"
    )
    queue = approval_queue(approver)
    assert [r.run_id for r in queue] == [first.run_id, second.run_id]
    assert queue[0].blast["devices"] == 1 and queue[0].required == 1
    client = Client()
    client.force_login(approver)
    page = client.get("/promote/queue/").content.decode()
    assert page.index("first") < page.index("second") and "medium" in page


def test_approving_from_the_page_redirects_to_the_queue(waiting, approver):
    client = Client()
    client.force_login(approver)
    answer = client.post(f"/promote/runs/{waiting.run_id}/", {"decision": "approve", "comment": "fine"})
    assert answer.status_code == 302 and answer["Location"] == "/promote/queue/"
    assert Approval.objects.get().decision == "approve"


def test_the_queue_rows_escape_every_value_and_say_what_the_approver_can_do():
    import datetime

    from django.utils import timezone

    from promote.templatetags.promote_tags import queue_rows

    created = timezone.now() - datetime.timedelta(hours=3, minutes=5)
    row = {
        "run_id": "r-1", "backend": "simulator", "risk_tier": '"><x', "risk_score": None, "created": created,
        "blast": {"devices": 1, "routes": "<i>", "sessions": 2}, "change__title": '<script>alert("t")</script>',
        "change__lab__name": "<b>lab</b>", "change__operator__username": "o'<", "required": 2,
        "approved_count": 1, "already_decided": False, "decide_url": '/promote/runs/r-1/?a="b"',
    }
    html = queue_rows([row, {**row, "run_id": "r-2", "backend": "netns", "already_decided": True}])
    first, second = html.split("\n</tr>")[:2]
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in first
    assert "&lt;b&gt;lab&lt;/b&gt;" in first and "o&#x27;&lt;" in first and "&lt;i&gt; route changes" in first
    assert 'class="badge &quot;&gt;&lt;x"' in first and "<x" not in html
    assert 'href="/promote/runs/r-1/?a=&quot;b&quot;">Review</a>' in first and "1 / 2" in first
    assert timezone.localtime(created).strftime("%Y-%m-%d %H:%M") in first and "3\xa0hours, 5\xa0minutes ago" in first
    assert "simulated" in first and "simulated" not in second
    assert "you decided" in second and "Review" not in second


def test_the_queue_page_counts_each_waiting_run_once_with_its_decisions(
    settings, operator, approver, approver2, submit
):
    from preflight.selectors import approval_queue_page
    from preflight.tests.web.fixtures import _user

    settings.AEGIS_HIGH_RISK_APPROVERS = 3
    third = _user("agnes", "approver")
    high = submit(operator, {"devices": {"r1": "ip route 10.255.0.3/32 10.0.12.1\n"}, "expect": None})
    rejected = submit(operator, NEEDS_APPROVAL, title="rejected")
    plain = submit(operator, NEEDS_APPROVAL, title="plain")
    assert high.risk_tier == "high" and plain.risk_tier == "medium"
    approval_decide(run=high, approver=approver, decision="approve", comment="one")
    approval_decide(run=high, approver=approver2, decision="approve", comment="two")
    approval_decide(run=rejected, approver=approver2, decision="reject", comment="no")

    def seen(user):
        rows, total = approval_queue_page(user, 25)
        return total, [(r["run_id"], r["approved_count"], r["required"], r["already_decided"]) for r in rows]

    assert seen(third) == (2, [(high.run_id, 2, 3, False), (plain.run_id, 0, 1, False)])
    assert seen(approver) == (2, [(high.run_id, 2, 3, True), (plain.run_id, 0, 1, False)])
    rows, total = approval_queue_page(approver, 1)
    assert total == 2 and [r["run_id"] for r in rows] == [high.run_id]
