"""Websocket consumer: a run's progress, live, with catch-up by `seq`.

The client connects to `/ws/runs/<run_id>/?after=<seq>`. The consumer authorizes on
connect (same rule as the run page), joins the run's group *before* reading what exists, then
sends every event after the client's `seq` and streams the rest; a `seq` it has already sent
is skipped, so the race between the catch-up read and a live event cannot duplicate a step.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404

from preflight import selectors
from preflight.models import RunEvent
from preflight.services.events import run_group, server_loop_set


def _after_of(scope: dict[str, Any]) -> int:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        return max(0, int(query.get("after", ["0"])[0]))
    except ValueError:
        return 0


@database_sync_to_async
def _authorize(user: Any, run_id: str) -> tuple[int, str] | None:
    try:
        run = selectors.access_run(user, run_id, with_result=False)  # only pk and run id are used
    except (Http404, PermissionDenied):
        return None
    return run.pk, run.run_id


@database_sync_to_async
def _events(run_pk: int, after: int) -> list[dict[str, Any]]:
    return [ev.as_dict() for ev in RunEvent.objects.filter(run_id=run_pk, seq__gt=after).order_by("seq")]


class RunProgressConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        server_loop_set(asyncio.get_running_loop())
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        found = await _authorize(self.scope.get("user"), run_id)
        if found is None:
            await self.close()  # refuses the handshake: no run data for the unauthorized
            return
        self.run_pk, self.run_id = found
        self.sent_seq = _after_of(self.scope)
        self.group = run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        for event in await _events(self.run_pk, self.sent_seq):
            await self._send_event(event)

    async def disconnect(self, code: int) -> None:
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # A client may ask again for everything after a seq (e.g. after it noticed a gap).
        if isinstance(content, dict) and isinstance(content.get("after"), int):
            for event in await _events(self.run_pk, max(0, content["after"])):
                if event["seq"] > content["after"]:
                    await self.send_json({"type": "event", "event": event})

    async def run_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if event["seq"] > self.sent_seq + 1:
            # A notification overtook an earlier one (or one was lost): fill the gap from the record.
            for missing in await _events(self.run_pk, self.sent_seq):
                await self._send_event(missing)
            return
        await self._send_event(event)

    async def _send_event(self, event: dict[str, Any]) -> None:
        if event["seq"] <= self.sent_seq:
            return
        self.sent_seq = event["seq"]
        await self.send_json({"type": "event", "event": event})
