"""Celery tasks: thin, id-only arguments, bounded in time, safe to run twice."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_ready
from django.conf import settings

from preflight.services.capacity import run_admit, run_release
from preflight.services.execution import run_execute, runs_orphaned_fail
from twin.pool import twin_pool_close, twin_pool_get


@shared_task(
    bind=True,
    name="preflight.run_execute",
    acks_late=True,  # a worker that dies mid-run leaves the message for another worker
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
)
def run_execute_task(self: Any, run_pk: int) -> str:
    """Execute one preflight run once this host has memory for its twin (privileged worker)."""
    if run_admit(run_pk=run_pk) is not None:
        # Not admitted: back on the queue, where this or another worker may take it later.
        raise self.retry(countdown=settings.AEGIS_CAPACITY_RETRY_S, max_retries=None)
    try:
        # A Celery worker process lives on between runs: it keeps warm twins (AEGIS_WARM_TWINS_MB).
        return run_execute(run_pk=run_pk, twin_pool=twin_pool_get(settings.AEGIS_WARM_TWINS_MB, settings.AEGIS_WARM_STATUS_DIR, "celery"))
    finally:
        run_release(run_pk=run_pk)


@worker_process_shutdown.connect
def _warm_twins_close(**_: object) -> None:
    """A worker process that stops tears its warm twins down (after a SIGKILL, the reaper does)."""
    twin_pool_close()


@worker_ready.connect
def _runs_orphaned_fail(**_: object) -> None:
    """A worker that starts marks failed the runs that workers (or CLIs) which died on this host held,
    at the step they were in (their twins are reaped by aegis_site.celery at the same moment)."""
    runs_orphaned_fail()
