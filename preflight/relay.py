"""The run relay of `serve --workers N`: web processes hand committed runs to the one process that runs twins.

With several web worker processes and no Celery broker, no web process may run a twin itself:
each would keep its own in-process worker and warm-twin pool, and a host's twins would be run by
several processes at once. So `serve` sets AEGIS_RUN_DISPATCH=relay in its web workers: a
committed run's primary key is pushed onto a Redis list (REDIS_URL, the same Redis as the
channel layer), and `serve`'s own process, the only one with an in-process worker, pops it and
submits it to `preflight.worker`. A run whose relay message is lost (the parent died) stays
queued and is marked failed by the next `serve` start (`runs_recover`), as with one process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings

log = logging.getLogger("aegis.worker")

RELAY_KEY = "aegis:run-relay"
# How long one wait for a run lasts before the loop looks at its stop flag again.
POLL_S = 1


def _redis():
    import redis

    if not settings.REDIS_URL:
        raise RuntimeError("the run relay needs REDIS_URL (serve --workers N refuses to start without it)")
    return redis.Redis.from_url(settings.REDIS_URL)


def relay_key() -> str:
    """One list per database: two sites sharing a Redis DB by mistake never run each other's runs."""
    db = settings.DATABASES["default"]
    return f"{RELAY_KEY}:{db.get('HOST') or ''}:{db.get('PORT') or ''}:{db['NAME']}"


def relay_send(run_pk: int) -> None:
    """From a web worker process, after the run's commit: hand it to the process that runs twins."""
    _redis().lpush(relay_key(), str(int(run_pk)))


def relay_clear() -> int:
    """At `serve` start, before `runs_recover`: those runs are failed by it, not run later."""
    return int(_redis().delete(relay_key()))


def relay_loop(stop: threading.Event, submit: Callable[[int], object]) -> None:
    """In `serve`'s own process: pop relayed runs and submit them until `stop` is set."""
    client = _redis()
    key = relay_key()
    while not stop.is_set():
        try:
            item = client.brpop([key], timeout=POLL_S)
        except Exception:  # Redis restarting: keep serving, try again
            log.exception("run relay: Redis read failed; retrying")
            stop.wait(POLL_S)
            continue
        if item is None:
            continue
        try:
            run_pk = int(item[1])
        except ValueError:
            log.error("run relay: ignoring %r, not a run id", item[1])
            continue
        submit(run_pk)
