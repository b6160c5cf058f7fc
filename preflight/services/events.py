"""Run events: the numbered record of a run's steps, and the websocket notification of each.

The database is the record (a per-run monotonic `seq`); the websocket only notifies, after
the event commits, and a page that missed one catches up by `seq`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection, transaction

from preflight.models import PreflightRun, RunEvent

log = logging.getLogger("aegis.web")

# The event loop the websocket clients of this process live in (set by the consumer), for the
# in-memory channel layer, which only delivers inside that one loop.
_server_loop: asyncio.AbstractEventLoop | None = None


def server_loop_set(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def run_group(run_id: str) -> str:
    return f"aegis-run-{run_id}"


def json_safe(data: Any) -> Any:
    return json.loads(json.dumps(data or {}, default=str))


def event_append(
    *, run: PreflightRun, step: str, status: str, message: str = "", data: dict[str, Any] | None = None
) -> RunEvent:
    """Write the next event of a run (seq allocated under a row lock), publish it after commit."""
    with transaction.atomic():
        # One statement both locks the run row and takes the next seq, so concurrent writers
        # (worker progress, an approval) get distinct, gapless numbers in commit order.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {PreflightRun._meta.db_table} SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq",
                [run.pk],
            )
            row = cursor.fetchone()
        if row is None:
            raise PreflightRun.DoesNotExist(f"run {run.pk} does not exist")
        seq = row[0]
        event = RunEvent.objects.create(
            run_id=run.pk, seq=seq, step=step[:40], status=status[:10], message=message, data=json_safe(data)
        )
        run.last_seq = seq
        payload = event.as_dict()
        run_id = run.run_id
        transaction.on_commit(lambda: event_publish(run_id, payload))
    return event


def event_publish(run_id: str, event: dict[str, Any]) -> None:
    """Notify websocket clients of a committed event. Never raises: the database is the record."""
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "run.event", "event": event}
        group = run_group(run_id)
        if isinstance(layer, InMemoryChannelLayer):
            # The in-memory layer lives in one event loop (the ASGI server's); hand the send to
            # that loop, or nobody is listening in this process and there is nothing to do.
            loop = _server_loop
            if loop is None or loop.is_closed():
                return
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                loop.create_task(layer.group_send(group, message))
            else:
                asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
            return
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # noqa: BLE001 - a lost notification is recovered by catch-up by seq
        log.warning("could not publish event %s of run %s", event.get("seq"), run_id, exc_info=True)
