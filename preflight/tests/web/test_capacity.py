"""Capacity-aware workers: a netns run is admitted only when the worker host's twin budget allows.

The run is never executed here (that would spawn a real twin): the tests stop at admission,
which is where the waiting happens, and at the run page that tells the operator why.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from preflight import services
from preflight.models import PreflightRun
from preflight.tests.web.fixtures import SHIP_READY, child_env
from twin.capacity import CapacityLedger

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_netns_run(operator, lab, settings, tmp_path) -> PreflightRun:
    settings.AEGIS_RUN_DISPATCH = "manual"  # leave it queued: no worker picks it up
    settings.AEGIS_CAPACITY_LEDGER = str(tmp_path / "capacity.json")
    return services.run_start(operator=operator, submission=services.Submission(
        lab=lab, title="t", devices=SHIP_READY["devices"], expect=SHIP_READY["expect"], backend="netns"))


def test_a_run_over_the_budget_waits_and_its_page_says_why(queued_netns_run, settings, client, operator):
    # given a worker host whose budget is taken by another run
    settings.AEGIS_WORKER_BUDGET_MB = 150
    CapacityLedger(settings.AEGIS_CAPACITY_LEDGER, 150).admit("other-run", 100)
    # when a worker asks to admit the triangle (3 routers, ~89 MB)
    assert services.run_admit(run_pk=queued_netns_run.pk) == 89
    assert services.run_admit(run_pk=queued_netns_run.pk) == 89  # a retry: still waiting, no second event
    # then it waits, with one event and the page saying so
    events = [e.message for e in queued_netns_run.events.all()]
    assert sum(m.startswith("queued for capacity (needs ~89 MB") for m in events) == 1
    client.force_login(operator)
    page = client.get(reverse("preflight:run", args=[queued_netns_run.run_id])).content.decode()
    assert "queued for capacity (needs ~89 MB" in page
    # and once the other run releases its memory, the next attempt is admitted and reserves it
    CapacityLedger(settings.AEGIS_CAPACITY_LEDGER, 150).release("other-run")
    assert services.run_admit(run_pk=queued_netns_run.pk) is None
    assert CapacityLedger(settings.AEGIS_CAPACITY_LEDGER, 150).reserved() == {queued_netns_run.run_id: 89}
    services.run_release(run_pk=queued_netns_run.pk)
    assert CapacityLedger(settings.AEGIS_CAPACITY_LEDGER, 150).reserved() == {}


def test_simulator_and_finished_runs_need_no_capacity(operator, lab, settings, tmp_path, submit):
    settings.AEGIS_WORKER_BUDGET_MB = 1
    settings.AEGIS_CAPACITY_LEDGER = str(tmp_path / "capacity.json")
    run = submit(operator, SHIP_READY)  # simulator, executed inline
    assert services.run_admit(run_pk=run.pk) is None


def test_the_http_backend_needs_configured_agents(operator, lab, settings):
    settings.AEGIS_TWIN_AGENTS = []
    with pytest.raises(services.ChangeInvalid) as caught:
        services.run_start(operator=operator, submission=services.Submission(
            lab=lab, title="t", devices=SHIP_READY["devices"], expect=SHIP_READY["expect"], backend="http"))
    assert "AEGIS_TWIN_AGENTS" in caught.value.errors["backend"][0]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_keeps_a_run_waiting_while_its_host_has_no_room(operator, lab, settings, tmp_path):
    # given a real Celery worker (its own process, over Redis) whose host budget holds no triangle
    import os
    import subprocess
    import sys
    import time

    import redis

    from aegis_site.celery import app as celery_app
    from preflight.tests.web.fixtures import REPO
    from preflight.tests.web.test_celery_worker import BROKER, _redis_up

    if not _redis_up():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    queue = f"aegis-capacity-test-{os.getpid()}"
    env = child_env(tmp_path, CELERY_BROKER_URL=BROKER, AEGIS_WORKER_BUDGET_MB="50",
                    AEGIS_CAPACITY_LEDGER=str(tmp_path / "capacity.json"), AEGIS_CAPACITY_RETRY_S="1")
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "aegis_site", "worker", "--pool=solo", "-Q", queue,
                             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    keys = ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "CELERY_TASK_DEFAULT_QUEUE")
    saved = {key: celery_app.conf.get(key) for key in keys}
    celery_app.conf.update(CELERY_BROKER_URL=BROKER, CELERY_TASK_ALWAYS_EAGER=False, CELERY_TASK_DEFAULT_QUEUE=queue)
    settings.CELERY_BROKER_URL = BROKER
    settings.AEGIS_RUN_DISPATCH = "celery"
    try:
        # when a netns run is submitted
        run = services.run_start(operator=operator, submission=services.Submission(
            lab=lab, title="t", devices=SHIP_READY["devices"], expect=SHIP_READY["expect"], backend="netns"))
        # then the worker takes it, finds no room, and puts it back, again and again, without running it
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and log.tell() >= 0:
            if (tmp_path / "worker.log").read_text().count("Retry in 1s") >= 2:
                break
            time.sleep(0.2)
        text = (tmp_path / "worker.log").read_text()
        assert text.count("Retry in 1s") >= 2, text[-3000:]
        run.refresh_from_db()
        assert run.status == "queued" and run.started is None
        messages = [e.message for e in run.events.all()]
        assert sum(m.startswith("queued for capacity (needs ~89 MB") for m in messages) == 1, messages
    finally:
        celery_app.conf.update(saved)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        redis.Redis.from_url(BROKER).delete(queue, f"_kombu.binding.{queue}")
