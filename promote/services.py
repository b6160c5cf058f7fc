"""Writes of the promote app (web side): approval decisions, recorded and audited.

The signed approval token and the gate are `promote/core/` (the promotion engineer's);
this records the human decision, after the separation-of-duties rules in `preflight.policy`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from preflight import policy, selectors
from preflight.models import PreflightRun
from preflight.services import audit_record, event_append
from promote.models import Approval

log = logging.getLogger("aegis.web")


class DecisionRefused(Exception):
    """The decision is not allowed; the message says why, in words for the approver."""


class DecisionInvalid(ValueError):
    """The decision itself is malformed (unknown decision, missing comment). `field` names the input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


MAX_COMMENT_CHARS = 4000


def approval_decide(*, run: PreflightRun, approver: Any, decision: str, comment: str) -> Approval:
    """Record `approver`'s approve/reject on `run`, audit it, and tell the run's watchers.

    Enforces the policy itself (DecisionRefused): role, separation of duties, state; the run
    row is locked so two approvers deciding at once are counted in order.
    """
    if decision not in (Approval.APPROVE, Approval.REJECT):
        raise DecisionInvalid("decision", "Choose approve or reject.")
    comment = (comment or "").strip()
    if not comment:
        raise DecisionInvalid(
            "comment", "Write a comment: auditors read why the change was approved or rejected."
        )
    if len(comment) > MAX_COMMENT_CHARS:
        raise DecisionInvalid("comment", f"Keep the comment under {MAX_COMMENT_CHARS} characters.")
    with transaction.atomic():
        locked = PreflightRun.objects.select_for_update().select_related("change__operator").get(pk=run.pk)
        refusal = policy.decide_refusal(
            selectors.actor_of(approver),
            selectors.run_facts(locked),
            high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS,
        )
        if refusal:
            audit_record(
                actor=approver,
                action="approval.refused",
                target=f"run:{locked.run_id}",
                detail={"decision": decision, "reason": refusal},
            )
            refused = DecisionRefused(refusal)
        else:
            refused = None
    if refused is not None:
        raise refused
    try:
        with transaction.atomic():
            locked = PreflightRun.objects.select_for_update().get(pk=run.pk)
            approval = Approval.objects.create(
                run=locked,
                approver=approver,
                decision=decision,
                comment=comment,
                subject_digest=locked.bundle_digest or f"run:{locked.run_id}",
            )
            leaf = _ledger_record(approval)
            audit_record(
                actor=approver,
                action=f"approval.{decision}",
                target=f"run:{locked.run_id}",
                detail={"comment": comment, "subject": approval.subject_digest, "ledger_index": leaf},
            )
            state = selectors.run_approval_state(locked)
            event_append(
                run=locked,
                step="approval",
                status="ok" if decision == "approve" else "failed",
                message=f"{approver.get_username()} {decision}d: {comment}",
                data={"decision": decision, "state": state},
            )
            run_pk = locked.pk
            transaction.on_commit(lambda: _report_refresh(run_pk))
    except IntegrityError:
        raise DecisionRefused("You have already decided on this run.") from None
    return approval


def _report_refresh(run_pk: int) -> None:
    """Re-render the examiner PDF so it lists the decisions (nothing sealed changes). Never raises."""
    try:
        from evidence.models import Bundle
        from evidence.services import bundle_pdf_refresh
    except ImportError:
        return
    run = PreflightRun.objects.filter(pk=run_pk).only("run_id").first()
    bundle = Bundle.objects.filter(run_id=run.run_id).first() if run else None
    if bundle is None:
        return
    try:
        bundle_pdf_refresh(bundle)
    except Exception:  # noqa: BLE001 - the decision stands; the PDF can be refreshed again later
        log.exception("could not refresh the examiner PDF of run %s after a decision", run.run_id)


def _ledger_record(approval: Approval) -> int | None:
    """Append the decision to the evidence ledger (same transaction); None when evidence is absent.

    A ledger that refuses (e.g. it no longer matches its last checkpoint) refuses the decision
    too: a decision that cannot be made tamper-evident is not recorded at all.
    """
    try:
        from evidence.core.canonical import canonical_bytes, digest_str
        from evidence.services import ledger_append
    except ImportError:
        return None
    record = {
        "kind": "approval",
        "run_id": approval.run.run_id,
        "subject": approval.subject_digest,
        "approver": approval.approver.get_username(),
        "decision": approval.decision,
        "comment": approval.comment,
        "at": approval.created.isoformat(),
    }
    try:
        appended = ledger_append("approval", digest_str(canonical_bytes(record)), ref=approval.run.run_id)
    except Exception as exc:
        log.exception("the ledger refused approval of run %s", approval.run.run_id)
        raise DecisionRefused(
            f"The evidence ledger refused to record the decision ({exc}); "
            "nothing was recorded. Tell an administrator."
        ) from exc
    return appended.index
