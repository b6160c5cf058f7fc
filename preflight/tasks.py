"""Celery tasks: thin, id-only arguments, bounded in time, safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from preflight import services


@shared_task(
    name="preflight.run_execute",
    acks_late=True,  # a worker that dies mid-run leaves the message for another worker
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
)
def run_execute_task(run_pk: int) -> str:
    """Execute one preflight run (the worker that spawns twins must be privileged)."""
    return services.run_execute(run_pk=run_pk)
