"""A run submitted with a broker configured executes in a real Celery worker process over Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aegis_site.celery import app as celery_app
from preflight import services
from preflight.tests.web.fixtures import REPO, SHIP_READY, child_env

BROKER = os.environ.get("AEGIS_TEST_BROKER_URL", "redis://127.0.0.1:6379/5")  # the web tests' own Redis db


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def celery_worker(settings, tmp_path):
    """A real `celery worker` process on the test database, killed by PID afterwards."""
    if not _redis_up():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    queue = f"aegis-web-test-{os.getpid()}"
    env = child_env(tmp_path, CELERY_BROKER_URL=BROKER)
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "aegis_site",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # This process sends to the same broker and queue.
    # (Keys carry the CELERY_ namespace: the app reads its config from Django settings.)
    keys = ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "CELERY_TASK_DEFAULT_QUEUE")
    saved = {key: celery_app.conf.get(key) for key in keys}
    celery_app.conf.update(
        CELERY_BROKER_URL=BROKER, CELERY_TASK_ALWAYS_EAGER=False, CELERY_TASK_DEFAULT_QUEUE=queue
    )
    settings.CELERY_BROKER_URL = BROKER
    settings.AEGIS_RUN_DISPATCH = "celery"
    try:
        yield proc, tmp_path / "worker.log"
    finally:
        celery_app.conf.update(saved)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        import redis

        # Leave the broker db as found: the queue and kombu's binding record of it.
        redis.Redis.from_url(BROKER).delete(queue, f"_kombu.binding.{queue}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_submitted_run_executes_in_a_real_celery_worker(celery_worker, operator, lab):
    proc, log_path = celery_worker
    # given a broker, when the operator submits, then the request returns with the run queued
    run = services.run_start(
        operator=operator,
        submission=services.Submission(
            lab=lab,
            title="Celery",
            devices=SHIP_READY["devices"],
            expect=SHIP_READY["expect"],
            backend="simulator",
        ),
    )
    assert run.status == "queued"
    # and the worker process (not this one) picks it up and finishes it
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        run.refresh_from_db()
        if run.done:
            break
        time.sleep(0.2)
    log = Path(log_path).read_text()
    assert proc.poll() is None, f"the worker died:\n{log[-3000:]}"
    assert (run.status, run.verdict) == ("finished", "ship_ready"), log[-3000:]
    assert run.bundle_digest.startswith("sha256:")
    started = run.events.get(step="run", status="started")
    assert started.data["pid"] == proc.pid and started.data["pid"] != os.getpid()
