"""Separation-of-duties rules (aegis_base/core/policy.py) as tables: given a decision, then the reasons."""

from __future__ import annotations

import pytest

from aegis_base.core.policy import Decision, approval_status, approvals_required, decision_check

B1 = "sha256:" + "1" * 64
B2 = "sha256:" + "2" * 64
APPROVER = frozenset({"approver"})


@pytest.mark.parametrize(
    ("verdict", "risk", "n", "expected"),
    [
        ("ship_ready", "low", 2, 0),
        ("needs_approval", "low", 2, 1),
        ("needs_approval", "medium", 2, 1),
        ("needs_approval", "high", 2, 2),
        ("needs_approval", "high", 3, 3),
        ("needs_approval", "high", 1, 1),
    ],
)
def test_approvals_required(verdict, risk, n, expected):
    assert approvals_required(verdict, risk, high_risk_approvers=n) == expected


@pytest.mark.parametrize("verdict", ["blocked", "weird"])
def test_blocked_runs_take_no_approvals(verdict):
    with pytest.raises(ValueError, match="not promotable"):
        approvals_required(verdict, "low")


# (approver, roles, operator, verdict, decision, prior, expected reason fragments; [] = allowed)
DECISION_TABLE = [
    ("alice", {"approver"}, "olivia", "needs_approval", "approve", [], []),
    ("alice", {"approver"}, "olivia", "needs_approval", "reject", [], []),
    ("olivia", {"approver", "operator"}, "olivia", "needs_approval", "approve", [], ["separation of duties"]),
    ("alice", {"operator"}, "olivia", "needs_approval", "approve", [], ["does not hold the 'approver' role"]),
    ("alice", set(), "olivia", "needs_approval", "approve", [], ["role"]),
    ("alice", {"approver"}, "olivia", "blocked", "approve", [], ["cannot be approved"]),
    ("alice", {"approver"}, "olivia", "ship_ready", "approve", [], ["needs no approval"]),
    ("alice", {"approver"}, "olivia", "needs_approval", "maybe", [], ["decision must be one of"]),
    # a rejection is final for that bundle, for everyone
    (
        "alice",
        {"approver"},
        "olivia",
        "needs_approval",
        "approve",
        [Decision("bob", B1, "reject")],
        ["final"],
    ),
    # ... but not for a new bundle (a re-run)
    ("alice", {"approver"}, "olivia", "needs_approval", "approve", [Decision("bob", B2, "reject")], []),
    (
        "alice",
        {"approver"},
        "olivia",
        "needs_approval",
        "approve",
        [Decision("alice", B1, "approve")],
        ["already decided"],
    ),
    ("alice", {"approver"}, "olivia", "needs_approval", "approve", [Decision("alice", B2, "approve")], []),
]


@pytest.mark.parametrize(
    ("approver", "roles", "operator", "verdict", "decision", "prior", "expected"), DECISION_TABLE
)
def test_decision_check(approver, roles, operator, verdict, decision, prior, expected):
    reasons = decision_check(
        approver=approver,
        approver_roles=roles,
        operator=operator,
        verdict=verdict,
        bundle_digest=B1,
        decision=decision,
        prior=prior,
    )
    if not expected:
        assert reasons == []
    for fragment in expected:
        assert any(fragment in r for r in reasons), reasons


# (verdict, risk, decisions, expected state, approved_by)
STATUS_TABLE = [
    ("ship_ready", "low", [], "not_required", []),
    ("needs_approval", "medium", [], "pending", []),
    ("needs_approval", "medium", [Decision("alice", B1, "approve")], "approved", ["alice"]),
    ("needs_approval", "high", [Decision("alice", B1, "approve")], "pending", ["alice"]),
    # the same approver twice is still one approver
    (
        "needs_approval",
        "high",
        [Decision("alice", B1, "approve"), Decision("alice", B1, "approve")],
        "pending",
        ["alice"],
    ),
    (
        "needs_approval",
        "high",
        [Decision("alice", B1, "approve"), Decision("bob", B1, "approve")],
        "approved",
        ["alice", "bob"],
    ),
    # the operator's own approval never counts
    ("needs_approval", "medium", [Decision("olivia", B1, "approve")], "pending", []),
    # no approver role at decision time: does not count
    ("needs_approval", "medium", [Decision("alice", B1, "approve", frozenset({"operator"}))], "pending", []),
    # approvals of an earlier bundle (before a re-run) do not count
    ("needs_approval", "medium", [Decision("alice", B2, "approve")], "pending", []),
    # one rejection beats any number of approvals
    (
        "needs_approval",
        "high",
        [Decision("alice", B1, "approve"), Decision("bob", B1, "approve"), Decision("carol", B1, "reject")],
        "rejected",
        ["alice", "bob"],
    ),
    ("blocked", "low", [Decision("alice", B1, "approve")], "not_promotable", []),
]


@pytest.mark.parametrize(("verdict", "risk", "decisions", "state", "approved_by"), STATUS_TABLE)
def test_approval_status(verdict, risk, decisions, state, approved_by):
    status = approval_status(
        verdict=verdict,
        risk_tier=risk,
        operator="olivia",
        bundle_digest=B1,
        decisions=decisions,
        high_risk_approvers=2,
    )
    assert status.state == state
    assert status.approved_by == approved_by
