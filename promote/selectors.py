"""Reads of the promote app: decisions on a run, filtered by who may see them."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from aegis_base.core import policy
from aegis_base.core.policy import promote_refusal
from aegis_base.selectors import actor_of
from evidence.api.bundles import bundle_or_404
from evidence.core.checkpoint import tlog_proof_format
from evidence.core.keys import public_key_from_pem
from evidence.core.merkle import inclusion_proof
from evidence.models import Checkpoint, LedgerEntry
from preflight.models import PreflightRun
from preflight.selectors import run_decisions
from promote.models import Approval


def approvals_of(run: PreflightRun) -> QuerySet[Approval]:
    """Every decision on a run as a queryset, oldest first. Assumes the caller may view the run."""
    return Approval.objects.filter(run=run).select_related("approver").order_by("created", "pk")


def approvals_for_run(run: PreflightRun) -> list[Approval]:
    """Every decision on a run, oldest first. Assumes the caller may view the run."""
    return run_decisions(run)


def approval_record(row: Approval) -> dict[str, Any]:
    """The one shape of a decision outside promote (PDF, crosswalk, OSCAL, Bundle.approvals):
    {"approver", "role", "decision": "approve"|"reject", "at": ISO 8601 UTC, "bundle_digest"}."""
    return {
        "approver": row.approver.get_username(),
        "role": "approver",
        "decision": row.decision,
        "at": row.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bundle_digest": row.subject_digest,
    }


def approval_records(run_id: str) -> list[dict[str, Any]]:
    """The decisions on a run as `approval_record`s, oldest first. No permission check."""
    rows = Approval.objects.filter(run__run_id=run_id).select_related("approver").order_by("created", "pk")
    return [approval_record(a) for a in rows]


def approvals_for_bundle(digest: str) -> list[dict[str, Any]]:
    """The decisions recorded on the bundle with this digest as `approval_record`s, oldest first.

    Read-only; assumes the caller may read the bundle (auditor, approver, the run's operator).
    """
    rows = Approval.objects.filter(subject_digest=digest).select_related("approver").order_by("created", "pk")
    return [approval_record(a) for a in rows]


def approvals_by_user(user: Any, *, limit: int = 50) -> list[Approval]:
    """The approver's own recent decisions (their history on the queue page)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        Approval.objects.filter(approver=user)
        .select_related("run", "run__change", "run__change__lab")
        # the page shows the run's id and title: not its result document or configs
        .only("created", "decision", "comment", "run__run_id", "run__change__title", "run__change__lab__name")
        .order_by("-created")[:limit]
    )


def signed_approvals_for_bundle(bundle_digest: str, *, decision: str | None = None) -> list[dict[str, Any]]:
    """The signed decisions on a bundle (envelopes; only `decision` if given), oldest first.

    Rejections are included by default: shown to the gate, one makes G2 refuse (final).
    Assumes the caller may promote the bundle.
    """
    from promote.models import SignedApproval

    rows = SignedApproval.objects.filter(bundle_digest=bundle_digest)
    if decision:
        rows = rows.filter(approval__decision=decision)
    return [r.envelope for r in rows.order_by("created")]


def approver_keys_registered() -> dict[str, Any]:
    """{keyid: ApproverKey} of every approver key AEGIS created: the registry G3 trusts."""
    from promote.core.approvals import ApproverKey, approver_keyring
    from promote.models import ApprovalSigningKey

    rows = ApprovalSigningKey.objects.select_related("user")
    return approver_keyring(
        [
            ApproverKey(username=r.user.get_username(), public_key=public_key_from_pem(r.public_key_pem))
            for r in rows
        ]
    )


def ledger_fresh_proof(kind: str, payload_digest: str) -> tuple[str | None, str | None]:
    """(tlog proof of the leaf under the latest checkpoint, that checkpoint's note); (None, None) if absent.

    G1 wants inclusion under the latest checkpoint, not the one sealed into the bundle: a
    log rewritten after sealing cannot then hide behind an old proof.
    """
    entry = LedgerEntry.objects.filter(kind=kind, payload_digest=payload_digest).order_by("index").first()
    latest = Checkpoint.objects.order_by("-tree_size").first()
    if entry is None or latest is None or entry.index >= latest.tree_size:
        return None, latest.note if latest else None
    leaves = [
        bytes.fromhex(h)
        for h in LedgerEntry.objects.filter(index__lt=latest.tree_size)
        .order_by("index")
        .values_list("leaf_hash", flat=True)
    ]
    return tlog_proof_format(entry.index, inclusion_proof(leaves, entry.index), latest.note), latest.note


def promotions_for_run(run_id: str) -> list[Any]:
    """Every promotion attempt of a run's bundle, newest first. Caller may view the run/bundle."""
    from promote.models import PromotionRecord

    return list(PromotionRecord.objects.filter(run_id=run_id).order_by("-created"))


def may_view_promotion_of(user: Any, *, bundle_operator: str, actor_name: str) -> bool:
    """Who reads a promotion record: its actor, the change's operator, approvers, auditors."""
    actor = actor_of(user)
    if not actor.is_authenticated:
        return False
    return (
        actor.is_superuser
        or actor.has_role(policy.APPROVER)
        or actor.has_role(policy.AUDITOR)
        or actor.username in (bundle_operator, actor_name)
    )


def access_promotion(user: Any, record_id: Any) -> Any:
    """One promotion record if the user may read it. Http404 unknown, PermissionDenied not allowed."""
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    from promote.models import PromotionRecord

    try:
        pk = int(record_id)
    except (TypeError, ValueError):
        raise Http404("No such promotion record.") from None
    row = PromotionRecord.objects.select_related("bundle").filter(pk=pk).first()
    if row is None:
        raise Http404("No such promotion record.")
    operator = row.bundle.operator_username if row.bundle else ""
    if not may_view_promotion_of(user, bundle_operator=operator, actor_name=row.actor_name):
        raise PermissionDenied("You may not read this promotion record.")
    return row


def access_bundle_to_promote(user: Any, bundle_id: Any) -> Any:
    """The sealed bundle row if the user may start its promotion (operator of the change or approver)."""
    from django.core.exceptions import PermissionDenied


    bundle = bundle_or_404(bundle_id)
    actor = actor_of(user)
    refusal = promote_refusal(
        username=actor.username if actor.is_authenticated else "",
        roles=actor.groups,
        is_superuser=actor.is_superuser,
        bundle_operator=bundle.operator_username,
    )
    if refusal:
        raise PermissionDenied(refusal)
    return bundle


def access_signed_approval(user: Any, approval_id: Any) -> Any:
    """A signed approval (envelope) for download: its approver, or anyone who may promote its bundle."""
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    from promote.models import SignedApproval

    try:
        pk = int(approval_id)
    except (TypeError, ValueError):
        raise Http404("No such approval.") from None
    row = (
        SignedApproval.objects.select_related("approval__approver", "approval__run__change__operator")
        .filter(approval_id=pk)
        .first()
    )
    if row is None:
        raise Http404("No signed approval for this decision (the run had no sealed bundle).")
    actor = actor_of(user)
    operator = row.approval.run.change.operator.get_username()
    if not actor.is_authenticated or not (
        actor.is_superuser
        or actor.has_role(policy.APPROVER)
        or actor.has_role(policy.AUDITOR)
        or actor.username == operator
    ):
        raise PermissionDenied("Only the change's operator, approvers and auditors download approvals.")
    return row
