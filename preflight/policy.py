"""Who may see and decide what: pure rules over plain data, no Django, table-tested.

Views and services ask these functions; the UI hiding a button is a courtesy, the refusal
here is the control. Separation of duties: an approver never decides on a change they
submitted, whatever groups they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPERATOR = "operator"
APPROVER = "approver"
AUDITOR = "auditor"
ROLES = (OPERATOR, APPROVER, AUDITOR)


@dataclass(frozen=True)
class Actor:
    username: str
    groups: frozenset[str] = frozenset()
    is_superuser: bool = False
    is_authenticated: bool = True

    def has_role(self, role: str) -> bool:
        return self.is_authenticated and (self.is_superuser or role in self.groups)


@dataclass(frozen=True)
class RunFacts:
    operator: str
    status: str  # queued | running | finished | failed
    verdict: str  # "" until finished
    risk_tier: str  # low | medium | high | ""
    # Twin tier (real | simulated). Deciding on simulated evidence is allowed and recorded,
    # but the promotion gate (G2) never promotes it; the UI says so next to the buttons.
    tier: str = "real"
    # (approver username, "approve" | "reject") in decision order
    decisions: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def approvals_required(risk_tier: str, *, high_risk_approvers: int = 2) -> int:
    """High-risk changes need more than one pair of eyes (AEGIS_HIGH_RISK_APPROVERS)."""
    return max(1, high_risk_approvers) if risk_tier == "high" else 1


def approval_state(facts: RunFacts, *, high_risk_approvers: int = 2) -> str:
    """none (no approval needed) | pending | approved | rejected. One rejection ends it."""
    if facts.verdict != "needs_approval":
        return "none"
    if any(decision == "reject" for _, decision in facts.decisions):
        return "rejected"
    approvers = {who for who, decision in facts.decisions if decision == "approve"}
    if len(approvers) >= approvals_required(facts.risk_tier, high_risk_approvers=high_risk_approvers):
        return "approved"
    return "pending"


def can_submit(actor: Actor) -> bool:
    return actor.has_role(OPERATOR)


def decide_refusal(actor: Actor, facts: RunFacts, *, high_risk_approvers: int = 2) -> str | None:
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


def can_view_bundle(actor: Actor, *, bundle_operator: str) -> bool:
    """Auditors see every sealed bundle; an operator sees the bundles of their own runs."""
    return actor.has_role(AUDITOR) or (actor.is_authenticated and actor.username == bundle_operator)
