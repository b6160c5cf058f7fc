"""Who may see and decide what: the one set of rules, pure functions over plain data, no Django.

Roles (`Actor`, `has_role`), who may browse bundles (`can_browse_bundles`), who may decide on a run
(`decide_refusal`), where a run or a bundle stands (`approval_state`, `approval_status`) and
who may start a promotion (`promote_refusal`). The web and API ask these functions; the UI
hiding a button is a courtesy, the refusal here is the control. The promotion gate (G2/G3)
applies the same rules to signed approval tokens. Rules, each with a table test in
aegis_base/tests/test_policy.py and test_policy_web.py:

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

OPERATOR = "operator"
APPROVER = "approver"
AUDITOR = "auditor"
ROLES = (OPERATOR, APPROVER, AUDITOR)
# The names the gate and the signed approval tokens use for the same roles.
ROLE_OPERATOR = OPERATOR
ROLE_APPROVER = APPROVER
APPROVE = "approve"
REJECT = "reject"
DECISIONS = (APPROVE, REJECT)
DEFAULT_HIGH_RISK_APPROVERS = 2


@dataclass(frozen=True)
class Actor:
    """The plain-data view of a user that the rules take (`aegis_base.selectors.actor_of`)."""

    username: str
    groups: frozenset[str] = frozenset()
    is_superuser: bool = False
    is_authenticated: bool = True

    def has_role(self, role: str) -> bool:
        return self.is_authenticated and (self.is_superuser or role in self.groups)


@dataclass(frozen=True)
class RunFacts:
    """What the decision rules need to know about one run."""

    operator: str
    status: str  # queued | running | finished | failed
    verdict: str  # "" until finished
    risk_tier: str  # low | medium | high | ""
    # Twin tier (real | simulated). Deciding on simulated evidence is allowed and recorded,
    # but the promotion gate (G2) never promotes it; the UI says so next to the buttons.
    tier: str = "real"
    # (approver username, "approve" | "reject") in decision order
    decisions: tuple[tuple[str, str], ...] = field(default_factory=tuple)


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


# ---------------------------------------------------------------------------- runs (web and API)


def approval_state(facts: RunFacts, *, high_risk_approvers: int = DEFAULT_HIGH_RISK_APPROVERS) -> str:
    """none (no approval needed) | pending | approved | rejected, by `approval_status`'s rules.

    Decisions recorded on a run are all on that run's evidence, so they count as one bundle here.
    """
    status = approval_status(
        verdict=facts.verdict,
        risk_tier=facts.risk_tier,
        operator=facts.operator,
        bundle_digest="",
        decisions=[Decision(approver=who, bundle_digest="", decision=what) for who, what in facts.decisions],
        high_risk_approvers=high_risk_approvers,
    )
    return "none" if status.state in ("not_required", "not_promotable") else status.state


def can_submit(actor: Actor) -> bool:
    return actor.has_role(OPERATOR)


def decide_refusal(
    actor: Actor, facts: RunFacts, *, high_risk_approvers: int = DEFAULT_HIGH_RISK_APPROVERS
) -> str | None:
    """Why `actor` may not approve or reject this run, or None when they may."""
    if not actor.is_authenticated:
        return "Sign in first."
    if not actor.has_role(APPROVER):
        return "Only members of the approver group can approve or reject runs."
    if actor.username == facts.operator:
        # Separation of duties holds for admins too: nobody signs off their own change.
        return "You submitted this change; another approver must decide on it (separation of duties)."
    if facts.status != "finished":
        return "The run has not finished; there is nothing to decide on yet."
    if facts.verdict != "needs_approval":
        return (
            f"This run's verdict is {facts.verdict or 'not set'}; only runs that need approval are decided."
        )
    if any(who == actor.username for who, _ in facts.decisions):
        return "You have already decided on this run."
    state = approval_state(facts, high_risk_approvers=high_risk_approvers)
    if state != "pending":
        return f"This run is already {state}."
    return None


def can_browse_bundles(actor: Actor) -> bool:
    return actor.has_role(AUDITOR)
