"""Reads of the preflight app, filtered by what the asking user may see.

`access_*` functions fetch one object while enforcing access: they raise `Http404` for an
unknown id and `PermissionDenied` for an object the user may not see, so every view and API
endpoint answers 404/403 the same way.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Max, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Cast
from django.http import Http404
from guardian.models import GroupObjectPermission, UserObjectPermission

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


# Columns no list (page or API) reads: the result document above all (tens of KB of JSON per
# run, parsed on every row), the change's configs and the lab's files. Reading a deferred one
# costs a query per row: the query-count tests (preflight/tests/web/test_query_counts.py) catch it.
LIST_DEFER = (
    "result",
    "options",
    "folder",
    "change__devices",
    "change__desired",
    "change__change_text",
    "change__description",
    "change__expect",
    "change__intent",
    "change__lab__routers",
    "change__lab__criticality",
    "change__lab__invariants",
    "change__lab__description",
)


def runs_listed(runs: QuerySet[PreflightRun]) -> QuerySet[PreflightRun]:
    """A list of runs as the lists show them: without the big columns, with their decisions
    prefetched (approval state), in a fixed number of queries whatever the number of rows."""
    return runs.defer(*LIST_DEFER).prefetch_related(
        Prefetch("approvals", queryset=_approvals_model().objects.select_related("approver").order_by("created", "pk"))
    )


def _approvals_model():
    """promote's Approval, through the reverse relation it declares on the run (no import of the layer above)."""
    return PreflightRun._meta.get_field("approvals").related_model


def runs_for_user(user: Any) -> QuerySet[PreflightRun]:
    """Runs the user may view: their own, those shared with their groups (approvers), all for admins."""
    base = PreflightRun.objects.select_related("change", "change__lab", "change__operator")
    if not getattr(user, "is_authenticated", False):
        return base.none()
    if user.is_superuser:
        return base
    # guardian's object permissions, read directly: the same rows get_objects_for_user(user,
    # "preflight.view_preflightrun", accept_global_perms=False) selects, without its ~3 ms of
    # query building and content-type look-ups on every list page (docs/performance.md, "Web").
    granted = {
        "permission__codename": "view_preflightrun",
        "permission__content_type": ContentType.objects.get_for_model(PreflightRun),
    }
    as_pk = Cast("object_pk", BigIntegerField())
    own = UserObjectPermission.objects.filter(user=user, **granted).values_list(as_pk)
    shared = GroupObjectPermission.objects.filter(group__user=user, **granted).values_list(as_pk)
    return base.filter(Q(pk__in=own) | Q(pk__in=shared))


def my_runs(user: Any, *, limit: int = 50) -> list[PreflightRun]:
    """The operator's own runs, newest first (the start page list)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        PreflightRun.objects.filter(change__operator=user)
        .select_related("change", "change__lab")
        .defer(*LIST_DEFER)
        .order_by("-created")[:limit]
    )


def access_run(user: Any, run_id: str, *, with_result: bool = True) -> PreflightRun:
    """The run, if the user may view it. Http404 when unknown, PermissionDenied when not theirs.

    `with_result=False` defers the result document (tens of KB of JSON): reading `run.result`
    then costs one query (the run page, whose result sections are usually rendered already)."""
    runs = PreflightRun.objects.select_related("change", "change__lab", "change__operator")
    if not with_result:
        runs = runs.defer("result")
    run = runs.filter(run_id=str(run_id)[:40]).first()
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


def events_latest_per_step(run: PreflightRun) -> list[RunEvent]:
    """The latest event of each step of the run, oldest first (one query, without event data)."""
    latest = RunEvent.objects.filter(run=run).values("step").annotate(last=Max("seq")).values("last")
    return list(
        RunEvent.objects.filter(run=run, seq__in=Subquery(latest))
        .only("seq", "step", "status", "message")
        .order_by("seq")
    )


def run_facts(run: PreflightRun, approvals: list | None = None) -> policy.RunFacts:
    """The plain facts the policy rules take. Pass the run's approvals if already fetched (or prefetch them)."""
    if approvals is None:
        prefetched = "approvals" in getattr(run, "_prefetched_objects_cache", {})
        # Not prefetched: one query with the approvers, not one more per decision.
        approvals = run.approvals.all() if prefetched else run.approvals.select_related("approver")
    approvals = sorted(approvals, key=lambda a: (a.created, a.pk))
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
    # `signed` (promote's signed approval, one-to-one): the run page links it for each decision.
    return list(run.approvals.select_related("approver", "signed").order_by("created", "pk"))


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


def approval_queue(user: Any) -> list[PreflightRun]:
    """Runs waiting for a decision the user may give, oldest first. Own changes are left out.

    Each run carries `required`, `approved_count` and `already_decided` (this user).
    """
    pending = _queue_pending(user)
    runs = list(
        runs_listed(PreflightRun.objects.select_related("change", "change__lab", "change__operator"))
        .filter(pk__in=list(pending))
        .order_by("created", "pk")
    )
    for run in runs:
        run.required, run.approved_count, run.already_decided = pending[run.pk]
    return runs


def approval_queue_page(user: Any, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The queue page: its first `limit` runs as plain rows (what the page shows, no model
    objects), and how many wait in all. Costs the same with 25 runs waiting or 500."""
    pending = _queue_pending(user)
    shown = list(pending)[:limit]
    rows = list(
        PreflightRun.objects.filter(pk__in=shown)
        .order_by("created", "pk")
        .values(
            "pk", "run_id", "backend", "risk_tier", "risk_score", "blast", "created",
            "change__title", "change__lab__name", "change__operator__username",
        )
    )
    for row in rows:
        row["required"], row["approved_count"], row["already_decided"] = pending[row["pk"]]
    return rows, len(pending)


def _queue_pending(user: Any) -> dict[int, tuple[int, int, bool]]:
    """Run pk -> (approvals required, approvals given, decided by this user), oldest first, for
    the runs pending this user's decision. Decided on plain rows: one small query, each waiting
    run with its decisions joined (a run with none comes once, with NULLs)."""
    actor = actor_of(user)
    if not actor.has_role(policy.APPROVER):
        return {}
    high = settings.AEGIS_HIGH_RISK_APPROVERS
    joined = (
        runs_for_user(user)
        .filter(status=PreflightRun.STATUS_FINISHED, verdict="needs_approval")
        .exclude(change__operator=user)
        .order_by("created", "pk", "approvals__created", "approvals__pk")
        .values_list(
            "pk", "risk_tier", "change__operator__username", "approvals__approver__username", "approvals__decision"
        )
    )
    candidates: dict[int, tuple[str, str]] = {}
    decisions: dict[int, list[tuple[str, str]]] = {}
    for pk, risk_tier, operator, who, what in joined:
        candidates.setdefault(pk, (risk_tier, operator))
        if who is not None:
            decisions.setdefault(pk, []).append((who, what))
    pending: dict[int, tuple[int, int, bool]] = {}
    for pk, (risk_tier, operator) in candidates.items():
        made = tuple(decisions.get(pk, ()))
        facts = policy.RunFacts(
            operator=operator, status=PreflightRun.STATUS_FINISHED, verdict="needs_approval",
            risk_tier=risk_tier, tier="", decisions=made,
        )
        if policy.approval_state(facts, high_risk_approvers=high) != "pending":
            continue
        pending[pk] = (
            policy.approvals_required("needs_approval", risk_tier, high_risk_approvers=high),
            sum(1 for _, d in made if d == "approve"),
            any(who == actor.username for who, _ in made),
        )
    return pending
