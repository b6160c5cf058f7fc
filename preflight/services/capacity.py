"""Twin capacity: a worker admits a netns run only when its host has memory for the twin."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from preflight.models import PreflightRun
from preflight.services.events import event_append
from preflight.services.labs import lab_topology
from twin.base import TopologyError
from twin.capacity import CapacityLedger, default_host_budget_mb, twin_cost_mb

log = logging.getLogger("aegis.web")


def _capacity_ledger() -> Any:
    budget = int(settings.AEGIS_WORKER_BUDGET_MB) or default_host_budget_mb()
    return CapacityLedger(settings.AEGIS_CAPACITY_LEDGER, budget)


def run_admit(*, run_pk: int) -> int | None:
    """Reserve this host's memory for a queued run's twin; None when admitted, else the MB it needs.

    Only `netns` runs spawn on the worker's own host (an `http` agent keeps its own budget, the
    simulator needs none). A run that waits gets one event, "queued for capacity (needs ~N MB)",
    shown on its page until a worker admits it. Assumes the caller is a worker.
    """
    run = PreflightRun.objects.select_related("change", "change__lab").get(pk=run_pk)
    if run.done or run.backend != "netns":
        return None
    try:
        need = twin_cost_mb(lab_topology(run.change.lab))
    except TopologyError:
        return None  # the pipeline reports the broken lab as an input error
    ledger = _capacity_ledger()
    try:
        admitted, free = ledger.admit(run.run_id, need)
    except OSError as exc:  # a ledger this process cannot write: run unbounded, and say so in the log
        log.warning("capacity ledger %s not usable (%s); admitting run %s", settings.AEGIS_CAPACITY_LEDGER,
                    exc, run.run_id)
        return None
    if admitted:
        return None
    message = (f"queued for capacity (needs ~{need} MB; this worker host has {max(free, 0)} MB free of its "
               f"{ledger.budget_mb} MB twin budget)")
    last = run.events.order_by("-seq").first()
    if last is None or not last.message.startswith("queued for capacity"):
        event_append(run=run, step="queued", status="info", message=message,
                     data={"needs_mb": need, "free_mb": free, "budget_mb": ledger.budget_mb})
    return need


def run_release(*, run_pk: int) -> None:
    """Give back the memory reserved by `run_admit` (the run finished, failed or was never admitted)."""
    run = PreflightRun.objects.filter(pk=run_pk).only("run_id").first()
    if run is None:
        return
    try:
        _capacity_ledger().release(run.run_id)
    except OSError:
        pass
