"""The run progress websocket: authorization on connect, catch-up by seq, live events, no duplicates."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from aegis_site.routing import websocket_urlpatterns
from preflight import services
from preflight.tests.web.fixtures import SHIP_READY

APP = URLRouter(websocket_urlpatterns)


def _communicator(user, run_id: str, after: int = 0) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(APP, f"/ws/runs/{run_id}/?after={after}")
    comm.scope["user"] = user
    return comm


async def _drain(comm: WebsocketCommunicator, timeout: float = 0.5) -> list[dict]:
    got = []
    while not await comm.receive_nothing(timeout=timeout):
        got.append(await comm.receive_json_from(timeout=timeout))
    return got


# Consumers reach the database from another thread (database_sync_to_async), so these tests
# commit their rows (transaction=True) instead of holding them in the test's open transaction.
@pytest.mark.django_db(transaction=True)
def test_the_socket_refuses_anyone_who_may_not_see_the_run(operator, operator2, outsider, auditor, submit):
    run = submit(operator, SHIP_READY)

    async def scenario(user):
        comm = _communicator(user, run.run_id)
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    verdicts = {
        who.username if who else "anonymous": async_to_sync(scenario)(who or AnonymousUser())
        for who in (operator2, outsider, auditor, None)
    }
    assert verdicts == {"oscar": False, "oddjob": False, "audrey": False, "anonymous": False}
    assert async_to_sync(scenario)(operator) is True  # and the owner gets in


@pytest.mark.django_db(transaction=True)
def test_the_socket_sends_what_exists_after_the_clients_seq(operator, submit):
    # given a finished run with N events, when a client reconnects having seen up to seq 10
    run = submit(operator, SHIP_READY)

    async def scenario(after):
        comm = _communicator(operator, run.run_id, after)
        connected, _ = await comm.connect()
        assert connected
        got = await _drain(comm)
        await comm.disconnect()
        return [m["event"]["seq"] for m in got]

    # then it receives exactly 11..N, in order; from 0 it receives everything
    assert async_to_sync(scenario)(10) == list(range(11, run.last_seq + 1))
    assert async_to_sync(scenario)(0) == list(range(1, run.last_seq + 1))


@pytest.mark.django_db(transaction=True)
def test_a_committed_event_arrives_live_once_and_a_gap_is_filled_from_the_record(operator, lab, settings):
    settings.AEGIS_RUN_DISPATCH = "manual"  # keep the run queued; this test writes its events itself
    run = services.run_start(
        operator=operator,
        submission=services.Submission(
            lab=lab, title="t", devices=SHIP_READY["devices"], backend="simulator"
        ),
    )

    async def scenario():
        comm = _communicator(operator, run.run_id, 0)
        connected, _ = await comm.connect()
        assert connected
        first = await _drain(comm, 0.3)  # the "queued" event
        # when the worker writes an event and commits, then the client gets it, once
        await database_sync_to_async(services.event_append)(
            run=run, step="spawn", status="started", message="x"
        )
        live = await comm.receive_json_from(timeout=5)
        # when a notification overtakes an earlier one (seq 4 announced while 3 was never announced)
        from preflight.models import RunEvent

        @database_sync_to_async
        def write_silently(seq, step):
            RunEvent.objects.create(run=run, seq=seq, step=step, status="ok")
            type(run).objects.filter(pk=run.pk).update(last_seq=seq)
            return RunEvent.objects.get(run=run, seq=seq).as_dict()

        await write_silently(3, "spawn")
        fourth = await write_silently(4, "converge_baseline")
        await get_channel_layer().group_send(
            services.run_group(run.run_id), {"type": "run.event", "event": fourth}
        )
        filled = await _drain(comm, 1.0)
        # and a duplicate notification of an event already sent is dropped
        await get_channel_layer().group_send(
            services.run_group(run.run_id), {"type": "run.event", "event": fourth}
        )
        dup = await _drain(comm, 0.5)
        await comm.disconnect()
        return first, live, filled, dup

    first, live, filled, dup = async_to_sync(scenario)()
    assert [m["event"]["seq"] for m in first] == [1]
    assert (live["event"]["seq"], live["event"]["step"]) == (2, "spawn")
    assert [m["event"]["seq"] for m in filled] == [3, 4]
    assert dup == []
