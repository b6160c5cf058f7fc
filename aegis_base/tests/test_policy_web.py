"""Separation-of-duties and visibility rules, as tables. Pure: no database, no Django."""

from __future__ import annotations

import pytest

from aegis_base.core.policy import Actor, RunFacts, approval_state, approvals_required, decide_refusal

OPS = Actor("olivia", frozenset({"operator"}))
APP = Actor("alice", frozenset({"approver"}))
APP2 = Actor("arnold", frozenset({"approver"}))
BOTH = Actor("olivia", frozenset({"operator", "approver"}))  # submits and approves: never her own
ADMIN = Actor("olivia", frozenset(), is_superuser=True)
AUD = Actor("audrey", frozenset({"auditor"}))
ANON = Actor("", is_authenticated=False)


def facts(**kw) -> RunFacts:
    base = {"operator": "olivia", "status": "finished", "verdict": "needs_approval", "risk_tier": "medium"}
    base.update(kw)
    return RunFacts(**base)


@pytest.mark.parametrize(
    "actor, run, refused_because",
    [
        (APP, facts(), None),
        (BOTH, facts(), "separation of duties"),  # holds the approver role, but it is her change
        (ADMIN, facts(), "separation of duties"),  # superusers too
        (OPS, facts(), "approver group"),
        (AUD, facts(), "approver group"),
        (ANON, facts(), "Sign in"),
        (APP, facts(status="running", verdict=""), "not finished"),
        (APP, facts(verdict="ship_ready"), "only runs that need approval"),
        (APP, facts(verdict="blocked"), "only runs that need approval"),
        (APP, facts(decisions=(("alice", "approve"),), risk_tier="high"), "already decided"),
        (APP2, facts(decisions=(("alice", "reject"),)), "already rejected"),
        (APP2, facts(decisions=(("alice", "approve"),)), "already approved"),
        (APP2, facts(decisions=(("alice", "approve"),), risk_tier="high"), None),  # second pair of eyes
        (APP, facts(tier="simulated"), None),  # recorded; the promotion gate refuses simulated evidence
    ],
)
def test_decide_refusal_table(actor, run, refused_because):
    # given an actor and a run, when asked whether they may decide, then the rule answers
    reason = decide_refusal(actor, run, high_risk_approvers=2)
    if refused_because is None:
        assert reason is None
    else:
        assert reason is not None and refused_because in reason


@pytest.mark.parametrize(
    "tier, setting, required",
    [("low", 2, 1), ("medium", 2, 1), ("high", 2, 2), ("high", 3, 3), ("", 2, 1)],
)
def test_approvals_required(tier, setting, required):
    assert approvals_required("needs_approval", tier, high_risk_approvers=setting) == required


def test_zero_high_risk_approvers_is_refused_not_read_as_one():
    # given the setting at 0 (the web used to read it as 1 while the gate raised), then both refuse it
    with pytest.raises(ValueError, match="AEGIS_HIGH_RISK_APPROVERS"):
        approvals_required("needs_approval", "high", high_risk_approvers=0)


@pytest.mark.parametrize(
    "run, state",
    [
        (facts(verdict="ship_ready"), "none"),
        (facts(), "pending"),
        (facts(decisions=(("alice", "approve"),)), "approved"),
        (facts(decisions=(("alice", "approve"),), risk_tier="high"), "pending"),
        (facts(decisions=(("alice", "approve"), ("alice", "approve")), risk_tier="high"), "pending"),
        (facts(decisions=(("alice", "approve"), ("arnold", "approve")), risk_tier="high"), "approved"),
        (facts(decisions=(("alice", "approve"), ("arnold", "reject")), risk_tier="high"), "rejected"),
    ],
)
def test_approval_state_table(run, state):
    assert approval_state(run, high_risk_approvers=2) == state
