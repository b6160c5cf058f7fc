"""`preflight --warm` and `manage.py twin_pool serve` (preflight/pool_holder.py): the holder executes a
queued --warm run and streams its steps; without a holder the run is cold and says so; the holder
refuses any other run; a caller that goes away fails its run. The simulator backend keeps these
fast (no FRR); the warm pool itself is tested on real twins in twin/tests/test_pool.py."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from preflight import services
from preflight.models import PreflightRun
from preflight.pool_client import HolderUnavailable, holder_run, holder_status
from preflight.pool_holder import PoolHolder
from preflight.tests.web.fixtures import SHIP_READY
from twin.pool import TwinPool
from twin.tests.test_pool_status import BASELINE, StandInTwin, _topo


@pytest.fixture
def holder(tmp_path, settings):
    """A holder serving on a socket of this test's own, in this process (threads)."""
    sock = tmp_path / "pool.sock"
    settings.AEGIS_TWIN_POOL_SOCKET = sock
    pool = TwinPool(budget_mb=100, status_dir=tmp_path / "warm", holder="twin_pool")
    h = PoolHolder(sock, pool)
    h.bind()
    serving = threading.Thread(target=h.serve_forever, daemon=True)
    serving.start()
    yield h
    h.stop()
    serving.join(5)
    h.wait_runs(30)
    h.close()
    pool.close()


def _submission(lab, **options):
    return services.Submission(lab=lab, title="Warm", devices=SHIP_READY["devices"], expect=SHIP_READY["expect"],
                               backend="simulator", options=options, via="cli")


@pytest.mark.django_db(transaction=True)
def test_the_holder_executes_a_warm_run_and_streams_its_steps(holder, operator, lab):
    # given a holder on a 0600 socket
    assert stat.S_IMODE(os.stat(holder.socket_path).st_mode) == 0o600
    seen: list[tuple] = []
    # when a --warm run is started, then the holder executes it and the caller sees every step
    run = services.run_start(operator=operator, submission=_submission(lab, warm=True), dispatch="warm",
                             observer=lambda *e: seen.append(e[:2]))
    assert (run.status, run.verdict) == ("finished", "ship_ready")
    assert seen[0] == ("run", "info") and ("verdict", "ok") in seen and ("teardown", "ok") in seen
    assert not run.events.filter(message__startswith="No warm twins").exists()
    # and the holder answers what it holds
    status = holder_status(holder.socket_path)
    assert status["holder"] == "twin_pool" and status["twins"] == [] and status["budget_mb"] == 100


@pytest.mark.django_db(transaction=True)
def test_the_holder_refuses_a_run_that_is_not_a_queued_warm_run(holder, operator, lab):
    # given a queued run submitted without --warm
    run = services.run_start(operator=operator, submission=_submission(lab), dispatch="manual")
    assert run.status == "queued"
    # when it is sent to the holder, then it is refused before anything runs, and stays queued
    with pytest.raises(HolderUnavailable, match="not a queued --warm run"):
        holder_run(holder.socket_path, run.pk, None)
    run.refresh_from_db()
    assert run.status == "queued"


@pytest.mark.django_db(transaction=True)
def test_a_caller_that_goes_away_fails_its_run(holder, operator, lab):
    run = services.run_start(operator=operator, submission=_submission(lab, warm=True), dispatch="manual")

    def leave(step, status, message, data):
        if step == "precheck":
            raise KeyboardInterrupt("Ctrl-C")

    # when the caller is interrupted mid-run (its socket closes)
    with pytest.raises(KeyboardInterrupt):
        holder_run(holder.socket_path, run.pk, leave)
    # then the holder fails the run at its next step instead of finishing it unseen
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.done:
            break
        time.sleep(0.1)
    assert run.status == "failed" and "went away" in run.error


def test_without_a_holder_a_warm_run_is_cold_and_says_so(operator, lab, settings, tmp_path):
    settings.AEGIS_TWIN_POOL_SOCKET = tmp_path / "nobody.sock"
    run = services.run_start(operator=operator, submission=_submission(lab, warm=True), dispatch="warm")
    assert (run.status, run.verdict) == ("finished", "ship_ready")
    note = run.events.get(message__startswith="No warm twins")
    assert "does not exist" in note.message and "cold" in note.message


def test_the_admin_lists_what_the_pools_hold(client, settings, tmp_path, roles):
    settings.AEGIS_WARM_STATUS_DIR = tmp_path / "warm"
    pool = TwinPool(budget_mb=100, status_dir=settings.AEGIS_WARM_STATUS_DIR, holder="celery")
    twin = StandInTwin()
    try:
        assert pool.adopt(_topo(), twin, BASELINE, twin.snapshot())
        admin = get_user_model().objects.create_superuser("root-admin", password="x-pw-12345")
        client.force_login(admin)
        page = client.get(reverse("admin:preflight_warm_twins")).content.decode()
        assert "celery pid" in page and "<td>triangle</td><td>2</td>" in page and "idle" in page
        # an operator who is not staff gets the admin's sign-in page, not the list
        client.logout()
        assert client.get(reverse("admin:preflight_warm_twins")).status_code == 302
    finally:
        pool.close()
    assert twin.torn_down
    assert PreflightRun.objects.count() == 0
