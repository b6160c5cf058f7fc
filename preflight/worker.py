"""The in-process worker: runs preflight jobs on threads inside the web process.

For a first try with no broker configured: one command (`manage.py serve`) brings up the
web app and executes runs with live progress, without blocking the request that submitted
them. A site sets CELERY_BROKER_URL and runs Celery workers instead (privileged, on hosts
that may spawn twins), and the web process stays unprivileged.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection

from preflight.services.capacity import run_admit, run_release
from preflight.services.execution import run_execute
from twin.pool import pool_status_prune, twin_pool_close, twin_pool_get
from twin.reap import twin_reap_orphans

log = logging.getLogger("aegis.worker")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if getattr(settings, "AEGIS_RUN_DISPATCH", "") == "relay":
        # A web worker of `serve --workers N`: twins run only in serve's own process (preflight/relay.py).
        raise RuntimeError("this web worker process relays runs; it never runs a twin itself")
    with _lock:
        if _executor is None:
            # Each twin is several FRR daemons per node: a small pool bounds the host's load.
            workers = int(getattr(settings, "AEGIS_INPROCESS_WORKERS", 2))
            # A previous server that died left its twins: remove them before running anything.
            twin_reap_orphans()
            pool_status_prune(settings.AEGIS_WARM_STATUS_DIR)  # warm-pool files of processes that died
            _executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="aegis-run")
        return _executor


def _execute(run_pk: int) -> str:
    close_old_connections()
    try:
        # Wait (on this pool thread) until the host has memory for the run's twin.
        while run_admit(run_pk=run_pk) is not None:
            time.sleep(float(settings.AEGIS_CAPACITY_RETRY_S))
        try:
            # This process lives on between runs: it keeps warm twins (AEGIS_WARM_TWINS_MB; 0 = off).
            return run_execute(run_pk=run_pk, twin_pool=twin_pool_get(settings.AEGIS_WARM_TWINS_MB, settings.AEGIS_WARM_STATUS_DIR, "serve"))
        finally:
            run_release(run_pk=run_pk)
    except Exception:
        log.exception("run %s crashed the in-process worker thread", run_pk)
        raise
    finally:
        connection.close()  # this thread's own connection; never leak one per run


def submit(run_pk: int) -> Future:
    """Queue one run on the in-process pool; returns at once."""
    return _pool().submit(_execute, run_pk)


def shutdown(wait: bool = True) -> None:
    global _executor
    with _lock:
        pool, _executor = _executor, None
    if pool is not None:
        pool.shutdown(wait=wait)
    twin_pool_close()  # the warm twins go with the worker
