"""Dispatch: who executes a committed run here (a Celery worker, the web process's threads, or nobody yet)."""

from __future__ import annotations

import logging

from django.conf import settings

from preflight import relay, worker
from preflight.services.execution import run_execute, run_fail_undispatched
from preflight.tasks import run_execute_task

log = logging.getLogger("aegis.web")


def dispatch_mode() -> str:
    """celery when a broker is configured; else the in-process worker thread (a first try).

    AEGIS_RUN_DISPATCH overrides: "inline" runs the job in the committing thread (tests),
    "manual" leaves it queued, "relay" hands it to the one process of `serve --workers N` that
    runs twins (set by serve in its web worker processes; preflight/relay.py).
    """
    forced = getattr(settings, "AEGIS_RUN_DISPATCH", "")
    if forced:
        return forced
    return "celery" if settings.CELERY_BROKER_URL else "thread"


def run_dispatch(run_pk: int, *, mode: str | None = None) -> None:
    """Hand a committed run to whatever executes runs here (`mode`, default the site's). From on_commit only."""
    mode = mode or dispatch_mode()
    if mode == "celery":
        try:
            run_execute_task.delay(run_pk)
        except Exception as exc:
            # The broker (Redis) is down: the run row is committed but nobody will ever take it.
            # Fail it with the reason, then let the request answer 503 (aegis_site.unavailable).
            run_fail_undispatched(run_pk, exc)
            raise
    elif mode == "inline":
        run_execute(run_pk=run_pk)
    elif mode == "thread":
        worker.submit(run_pk)
    elif mode == "relay":
        try:
            relay.relay_send(run_pk)
        except Exception as exc:
            # Redis is down: as for the broker, fail the run with the reason, then answer 503.
            run_fail_undispatched(run_pk, exc)
            raise
    elif mode != "manual":  # manual: left queued for an admin or a test to execute
        log.error(
            "AEGIS_RUN_DISPATCH=%r is not celery, thread, relay, inline or manual; run %s stays queued",
            mode,
            run_pk,
        )
