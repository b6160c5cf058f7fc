"""Separation-of-duties rules for approvals: pure functions over plain data, no Django.

The web shell calls `decision_check` before it records an approver's decision and
`approval_status` to show where a bundle stands; the gate (G2/G3) applies the same rules
to signed approval tokens. Rules, each with a table test in promote/tests/core/test_policy.py:

1. The approver is never the change's operator (an operator cannot approve their own run).
2. The approver holds the approver role at decision time (roles are read when deciding,
   not when the run was submitted, so a revoked approver cannot sign off later).
3. A run of high risk needs N distinct approvers (setting AEGIS_HIGH_RISK_APPROVERS,
   default 2); a run of low or medium risk that needs approval needs one.
4. A rejection is final for that bundle: no later approval counts, nobody may decide again.
5. Approvals are bound to one bundle digest: a re-run produces a new bundle, and decisions
   on the old bundle do not count for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ROLE_APPROVER = "approver"
APPROVE = "approve"
REJECT = "reject"
DECISIONS = (APPROVE, REJECT)
DEFAULT_HIGH_RISK_APPROVERS = 2


@dataclass(frozen=True)
class Decision:
    """One recorded decision: who, on which bundle, what, and the roles they held then."""

    approver: str
    bundle_digest: str
    decision: str  # approve | reject
    roles: frozenset[str] = frozenset({ROLE_APPROVER})
    at: str = ""  # ISO 8601 UTC, for messages only


@dataclass
class ApprovalStatus:
    required: int
    state: str  # not_required | pending | approved | rejected | not_promotable
    approved_by: list[str] = field(default_factory=list)
    rejected_by: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approved_by))


def approvals_required(
    verdict: str, risk_tier: str | None, *, high_risk_approvers: int = DEFAULT_HIGH_RISK_APPROVERS
) -> int:
    """How many distinct approvers a bundle needs before promotion (0 for ship_ready)."""
    if verdict == "ship_ready":
        return 0
    if verdict != "needs_approval":
        raise ValueError(f"a {verdict!r} run is not promotable and takes no approvals")
    if high_risk_approvers < 1:
        raise ValueError("AEGIS_HIGH_RISK_APPROVERS must be at least 1")
    return high_risk_approvers if risk_tier == "high" else 1


def decision_check(
    *,
    approver: str,
    approver_roles: Iterable[str],
    operator: str | None,
    verdict: str,
    bundle_digest: str,
    decision: str,
    prior: Iterable[Decision] = (),
) -> list[str]:
    """Why `approver` may not record `decision` on this bundle now; empty when they may."""
    reasons: list[str] = []
    roles = set(approver_roles)
    if decision not in DECISIONS:
        reasons.append(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    if operator is not None and approver == operator:
        reasons.append(
            f"{approver} submitted this change and cannot decide on it (separation of duties); "
            "ask another approver"
        )
    if ROLE_APPROVER not in roles:
        reasons.append(f"{approver} does not hold the {ROLE_APPROVER!r} role now")
    if verdict == "ship_ready":
        reasons.append("this run is ship_ready: it needs no approval")
    elif verdict != "needs_approval":
        reasons.append(f"this run's verdict is {verdict!r}: it cannot be approved; fix the change and re-run")
    for d in prior:
        if d.bundle_digest != bundle_digest:
            continue  # another bundle (an earlier run): its decisions do not carry over
        if d.decision == REJECT:
            reasons.append(
                f"{d.approver} rejected this bundle{(' at ' + d.at) if d.at else ''}; a rejection is "
                "final: re-run the preflight to get a new bundle"
            )
        if d.approver == approver:
            reasons.append(f"{approver} already decided on this bundle ({d.decision})")
    # One reason per rule is enough for the screen; keep the order stable for tests.
    return list(dict.fromkeys(reasons))


def approval_status(
    *,
    verdict: str,
    risk_tier: str | None,
    operator: str | None,
    bundle_digest: str,
    decisions: Iterable[Decision],
    high_risk_approvers: int = DEFAULT_HIGH_RISK_APPROVERS,
) -> ApprovalStatus:
    """Where a bundle stands: how many approvals it needs, who approved, who rejected."""
    if verdict not in ("ship_ready", "needs_approval"):
        return ApprovalStatus(0, "not_promotable", reasons=[f"verdict {verdict!r} is never promotable"])
    required = approvals_required(verdict, risk_tier, high_risk_approvers=high_risk_approvers)
    status = ApprovalStatus(required, "pending")
    for d in decisions:
        if d.bundle_digest != bundle_digest:
            continue
        if d.decision == REJECT:
            status.rejected_by = status.rejected_by or d.approver
            continue
        if operator is not None and d.approver == operator:
            status.reasons.append(f"approval by {d.approver} ignored: they are the operator of this change")
            continue
        if ROLE_APPROVER not in d.roles:
            status.reasons.append(
                f"approval by {d.approver} ignored: no {ROLE_APPROVER!r} role when deciding"
            )
            continue
        if d.approver not in status.approved_by:
            status.approved_by.append(d.approver)
    if status.rejected_by:
        status.state = "rejected"
        status.reasons.append(f"rejected by {status.rejected_by}; final for this bundle")
    elif required == 0:
        status.state = "not_required"
    elif len(status.approved_by) >= required:
        status.state = "approved"
    else:
        status.reasons.append(
            f"{status.missing} more distinct approver(s) needed ({len(status.approved_by)} of {required})"
        )
    return status


ROLE_OPERATOR = "operator"


def promote_refusal(
    *, username: str, roles: Iterable[str], is_superuser: bool = False, bundle_operator: str
) -> str | None:
    """Why `username` may not start a promotion of a bundle, or None when they may.

    The operator who submitted the change and any approver may start one (approvers often
    dry-run what they approved); auditors are read-only and outsiders have no say. Starting
    a promotion grants nothing: the gate still wants approvals from people other than the
    operator (G3), so the operator promoting their own change is not self-approval.
    """
    if not username:
        return "Sign in first."
    held = set(roles)
    if is_superuser or ROLE_APPROVER in held:
        return None
    if ROLE_OPERATOR in held and username == bundle_operator:
        return None
    if ROLE_OPERATOR in held:
        return "Only the operator who submitted this change, or an approver, may promote it."
    return "Only the change's operator or an approver may promote a bundle; you hold neither role."
