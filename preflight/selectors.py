"""Reads of the preflight app, filtered by what the asking user may see.

`access_*` functions fetch one object while enforcing access: they raise `Http404` for an
unknown id and `PermissionDenied` for an object the user may not see, so every view and API
endpoint answers 404/403 the same way.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from guardian.shortcuts import get_objects_for_user

from aegis_base.core import policy
from aegis_base.selectors import actor_of, roles_of  # noqa: F401 - preflight's views ask selectors.*
from preflight.models import Lab, PreflightRun, RunEvent

# The steps a run goes through, in order, as the run page lists them (CONTRACTS.md).
PIPELINE_STEPS = (
    "precheck",
    "static",
    "spawn",
    "converge_baseline",
    "snapshot_baseline",
    "resilience_baseline",
    "apply",
    "converge_change",
    "snapshot_change",
    "diff",
    "dataplane",
    "resilience_change",
    "invariants",
    "rollback",
    "converge_rollback",
    "snapshot_rollback",
    "teardown",
    "verdict",
)
STEP_LABELS = {
    "queued": "Queued",
    "run": "Worker",
    "propose": "LLM proposal",
    "precheck": "Guards",
    "static": "Static analysis",
    "spawn": "Spawn twin",
    "converge_baseline": "Baseline converges",
    "snapshot_baseline": "Snapshot before",
    "apply": "Apply change",
    "converge_change": "Change converges",
    "snapshot_change": "Snapshot after",
    "diff": "Diff",
    "dataplane": "Data plane (FIBs)",
    "resilience_baseline": "Failure scenarios before",
    "resilience_change": "Failure scenarios after",
    "invariants": "Invariants",
    "rollback": "Rollback",
    "converge_rollback": "Rollback converges",
    "snapshot_rollback": "Snapshot after rollback",
    "teardown": "Teardown",
    "verdict": "Verdict",
    "seal": "Seal evidence",
    "approval": "Approval",
}


def labs_enabled() -> QuerySet[Lab]:
    return Lab.objects.filter(enabled=True)


def runs_for_user(user: Any) -> QuerySet[PreflightRun]:
    """Runs the user may view: their own, those shared with their groups (approvers), all for admins."""
    base = PreflightRun.objects.select_related("change", "change__lab", "change__operator")
    if not getattr(user, "is_authenticated", False):
        return base.none()
    if user.is_superuser:
        return base
    return get_objects_for_user(user, "preflight.view_preflightrun", klass=base, accept_global_perms=False)


def my_runs(user: Any, *, limit: int = 50) -> list[PreflightRun]:
    """The operator's own runs, newest first (the start page list)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        PreflightRun.objects.filter(change__operator=user)
        .select_related("change", "change__lab")
        .order_by("-created")[:limit]
    )


def access_run(user: Any, run_id: str) -> PreflightRun:
    """The run, if the user may view it. Http404 when unknown, PermissionDenied when not theirs."""
    run = (
        PreflightRun.objects.select_related("change", "change__lab", "change__operator")
        .filter(run_id=str(run_id)[:40])
        .first()
    )
    if run is None:
        raise Http404("No such run.")
    if not getattr(user, "is_authenticated", False):
        raise PermissionDenied("Sign in to see runs.")
    # The operator's own run needs no permission lookup (the common case, and the hot path).
    if run.change.operator_id == user.pk:
        return run
    if not (user.is_superuser or user.has_perm("preflight.view_preflightrun", run)):
        raise PermissionDenied("This run belongs to another operator.")
    return run


def events_after(run: PreflightRun, after: int = 0, *, limit: int = 1000) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")[:limit])


def run_facts(run: PreflightRun, approvals: list | None = None) -> policy.RunFacts:
    """The plain facts the policy rules take. Pass the run's approvals if already fetched (or prefetch them)."""
    approvals = sorted(
        run.approvals.all() if approvals is None else approvals, key=lambda a: (a.created, a.pk)
    )
    decisions = tuple((a.approver.get_username(), a.decision) for a in approvals)
    # The tier follows from the backend (the simulator is the only simulated one); reading it from
    # the result would load the whole result document for every row of the queue.
    tier = "simulated" if run.backend == "simulator" else "real"
    return policy.RunFacts(
        operator=run.change.operator.get_username(),
        status=run.status,
        verdict=run.verdict,
        risk_tier=run.risk_tier,
        tier=tier,
        decisions=decisions,
    )


def run_decisions(run: PreflightRun) -> list[Any]:
    """The decisions recorded on a run (promote's `Approval` rows), oldest first.

    Read through the reverse relation promote declares on the run, so preflight needs no import
    of the app above it. Assumes the caller may view the run.
    """
    return list(run.approvals.select_related("approver").order_by("created", "pk"))


def run_approval_state(run: PreflightRun, facts: policy.RunFacts | None = None) -> str:
    return policy.approval_state(
        facts or run_facts(run), high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS
    )


def run_steps(run: PreflightRun, events: list[RunEvent]) -> list[dict[str, Any]]:
    """One row per step with its latest status, in pipeline order (steps not reached are pending)."""
    latest: dict[str, RunEvent] = {}
    for ev in events:
        latest[ev.step] = ev
    order = ["queued", "run"] + (["propose"] if run.change.intent else []) + list(PIPELINE_STEPS) + ["seal"]
    rows = []
    for step in order:
        ev = latest.get(step)
        rows.append(
            {
                "step": step,
                "label": STEP_LABELS.get(step, step),
                "status": ev.status if ev else "pending",
                "message": ev.message if ev else ("not run" if run.done else ""),
                "seq": ev.seq if ev else 0,
            }
        )
    return rows


def blast_radius(result: dict[str, Any] | None) -> dict[str, int]:
    """What the change touched, in counts an approver can weigh at a glance."""
    result = result or {}
    diff = result.get("diff") or {}
    nodes = diff.get("nodes") or {}
    count = {
        "devices": len((result.get("change") or {}).get("devices") or {}),
        "routes": 0,
        "sessions": 0,
        "adjacencies": 0,
        "reachability_lost": len(diff.get("reachability_lost") or []),
    }
    for per in nodes.values():
        count["routes"] += sum(
            len(per.get(k) or []) for k in ("routes_added", "routes_removed", "routes_changed")
        )
        count["sessions"] += len(per.get("sessions_lost") or []) + len(per.get("sessions_gained") or [])
        count["adjacencies"] += len(per.get("adjacencies_lost") or []) + len(
            per.get("adjacencies_gained") or []
        )
    return count


def routes_chart(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Routes per node before and after the change (and after rollback), scaled for a bar chart."""
    snaps = (result or {}).get("snapshots") or {}
    before = (snaps.get("baseline") or {}).get("nodes") or {}
    after = (snaps.get("after") or {}).get("nodes") or {}
    rows = []
    for node in sorted(set(before) | set(after)):
        rows.append(
            {
                "node": node,
                "before": len((before.get(node) or {}).get("routes") or {}),
                "after": len((after.get(node) or {}).get("routes") or {}),
            }
        )
    top = max([1] + [max(r["before"], r["after"]) for r in rows])
    for r in rows:
        r["before_pct"] = round(100 * r["before"] / top)
        r["after_pct"] = round(100 * r["after"] / top)
    return rows


# What the queue page shows; loading less (no result document, no user timestamps) keeps it
# fast with many runs waiting.
QUEUE_FIELDS = (
    "run_id",
    "backend",
    "status",
    "verdict",
    "risk_tier",
    "risk_score",
    "blast",
    "created",
    "change__title",
    "change__lab__name",
    "change__operator__username",
)


def approval_queue(user: Any) -> list[PreflightRun]:
    """Runs waiting for a decision the user may give, oldest first. Own changes are left out."""
    actor = actor_of(user)
    if not actor.has_role(policy.APPROVER):
        return []
    candidates = (
        runs_for_user(user)
        .filter(status=PreflightRun.STATUS_FINISHED, verdict="needs_approval")
        .exclude(change__operator=user)
        .only(*QUEUE_FIELDS)
        .prefetch_related("approvals__approver")
        .order_by("created")
    )
    queue = []
    for run in candidates:
        facts = run_facts(run)
        if policy.approval_state(facts, high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS) != "pending":
            continue
        run.required = policy.approvals_required(
            "needs_approval", run.risk_tier, high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS
        )
        run.approved_count = sum(1 for _, d in facts.decisions if d == "approve")
        run.already_decided = any(who == actor.username for who, _ in facts.decisions)
        queue.append(run)
    return queue
