"""Reads of the promote app: decisions on a run, filtered by who may see them."""

from __future__ import annotations

from typing import Any

from preflight.models import PreflightRun
from promote.models import Approval


def approvals_for_run(run: PreflightRun) -> list[Approval]:
    """Every decision on a run, oldest first. Assumes the caller may view the run."""
    return list(Approval.objects.filter(run=run).select_related("approver").order_by("created"))


def approvals_by_user(user: Any, *, limit: int = 50) -> list[Approval]:
    """The approver's own recent decisions (their history on the queue page)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        Approval.objects.filter(approver=user)
        .select_related("run", "run__change", "run__change__lab")
        .order_by("-created")[:limit]
    )
