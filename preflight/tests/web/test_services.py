"""Submitting and executing runs: rows, events, permissions, failures. Real PostgreSQL, simulator twin."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from aegis_base.models import AuditEntry
from evidence.models import Bundle
from preflight import services
from preflight.models import ChangeRequest, PreflightRun, RunEvent
from preflight.selectors import runs_for_user
from preflight.tests.web.fixtures import BLOCKED, NEEDS_APPROVAL, SHIP_READY

pytestmark = pytest.mark.django_db


def test_a_clean_change_runs_to_ship_ready_and_is_sealed(operator, operator2, submit):
    # given an operator, when she submits a clean, declared change
    run = submit(operator, SHIP_READY)
    # then the run finished ship_ready, every step is an event with gapless seqs, and it is sealed
    assert (run.status, run.verdict, run.risk_tier) == ("finished", "ship_ready", "low")
    seqs = list(run.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and run.last_seq == seqs[-1]
    steps = set(run.events.values_list("step", flat=True))
    assert {"precheck", "static", "spawn", "diff", "rollback", "teardown", "verdict", "seal"} <= steps
    assert run.bundle_digest.startswith("sha256:")
    assert Bundle.objects.filter(
        run_id=run.run_id, digest=run.bundle_digest, operator_username="olivia"
    ).exists()
    # and only she sees it
    assert list(runs_for_user(operator)) == [run]
    assert list(runs_for_user(operator2)) == []
    assert AuditEntry.objects.filter(action="run.submit", target=f"run:{run.run_id}", actor=operator).exists()


def test_a_needs_approval_run_is_shared_with_approvers_only(operator, approver, auditor, submit):
    run = submit(operator, NEEDS_APPROVAL)
    assert run.verdict == "needs_approval"
    assert list(runs_for_user(approver)) == [run]
    assert list(runs_for_user(auditor)) == []


def test_a_blocked_run_is_not_shared_with_approvers(operator, approver, submit):
    run = submit(operator, BLOCKED)
    assert run.verdict == "blocked"
    assert any(r["code"] == "STATIC_ERROR" for r in run.result["reasons"])
    assert list(runs_for_user(approver)) == []


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"devices": {"r3": "do show run\n"}, "expect": None}, "device:r3", "`do` is not allowed"),
        ({"devices": {"r9": "ip route 10.1.0.0/24 Null0\n"}, "expect": None}, "device:r9", "not in lab"),
        ({"devices": {}, "expect": None}, "__all__", "at least one device"),
        (
            {
                "devices": {"r3": "ip route 10.42.0.0/24 Null0\n"},
                "expect": {"prefixes_added": {"r3": ["10.42.0.1/24"]}},
            },
            "prefixes_added",
            "is not a prefix",
        ),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_writes_nothing(operator, lab, change, field, words):
    # given a change that cannot run, when submitted, then ChangeInvalid names the field and nothing is written
    with pytest.raises(services.ChangeInvalid) as caught:
        services.run_start(
            operator=operator,
            submission=services.Submission(
                lab=lab, title="bad", devices=change["devices"], expect=change["expect"], backend="simulator"
            ),
        )
    assert field in caught.value.errors, caught.value.errors
    assert words in " ".join(caught.value.errors[field])
    assert (
        ChangeRequest.objects.count() == 0
        and PreflightRun.objects.count() == 0
        and RunEvent.objects.count() == 0
    )


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"backend": "docker"}, "backend"),
        ({"frameworks": ["made-up-framework"]}, "frameworks"),
        ({"intent": "add a route"}, "__all__"),
    ],
)
def test_bad_options_are_refused(operator, lab, overrides, field):
    sub = services.Submission(lab=lab, title="t", devices=SHIP_READY["devices"], backend="simulator")
    for key, value in overrides.items():
        setattr(sub, key, value)
    with pytest.raises(services.ChangeInvalid) as caught:
        services.run_start(operator=operator, submission=sub)
    assert field in caught.value.errors
    assert PreflightRun.objects.count() == 0


def test_only_operators_submit(approver, lab):
    with pytest.raises(PermissionError):
        services.run_start(
            operator=approver,
            submission=services.Submission(
                lab=lab, title="t", devices=SHIP_READY["devices"], backend="simulator"
            ),
        )
    assert ChangeRequest.objects.count() == 0


def test_executing_a_finished_run_again_changes_nothing(operator, submit):
    # a redelivered Celery task must not run the twin twice
    run = submit(operator, SHIP_READY)
    before = run.last_seq
    assert services.run_execute(run_pk=run.pk) == "finished"
    run.refresh_from_db()
    assert run.last_seq == before


def test_a_lab_that_vanished_fails_the_run_with_a_reason(
    operator, lab, django_capture_on_commit_callbacks, settings
):
    # given a run queued against a lab whose folder is then removed, when the worker executes it
    settings.AEGIS_RUN_DISPATCH = "manual"
    run = services.run_start(
        operator=operator,
        submission=services.Submission(
            lab=lab, title="t", devices=SHIP_READY["devices"], backend="simulator"
        ),
    )
    lab.folder = "/nonexistent/aegis-lab"
    lab.save()
    # then it ends failed (never stuck "running"), with a message and a final event
    assert services.run_execute(run_pk=run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == "failed" and run.finished is not None
    assert "aegis-lab" in run.error or "lab" in run.error.lower()
    last = run.events.order_by("-seq").first()
    assert (last.step, last.status) == ("run", "failed")


def test_recovery_fails_runs_left_by_a_dead_in_process_worker(operator, lab):
    sub = services.Submission(lab=lab, title="t", devices=SHIP_READY["devices"], backend="simulator")
    stuck = services.run_start(operator=operator, submission=sub)  # on_commit never fires in this test
    PreflightRun.objects.filter(pk=stuck.pk).update(status="running")
    services.event_append(run=stuck, step="converge", status="started", message="baseline")
    assert services.runs_recover() == 1
    stuck.refresh_from_db()
    # the row says it failed and in which step the worker died
    assert stuck.status == "failed" and "restarted" in stuck.error and "at step converge" in stuck.error


def test_a_run_whose_process_died_is_failed_at_its_step_by_the_next_process(operator, lab):
    import os
    import socket
    import subprocess

    from twin.runstate import proc_start_time

    sub = services.Submission(lab=lab, title="t", devices=SHIP_READY["devices"], backend="simulator")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs (the killed CLI)
    here = socket.gethostname()
    live_pid = os.getppid()
    cases = {
        "dead": {"host": here, "pid": dead.pid, "pid_start": None},
        "reused": {"host": here, "pid": live_pid, "pid_start": -1},  # the same number, a later process
        "alive": {"host": here, "pid": live_pid, "pid_start": proc_start_time(live_pid)},
        "elsewhere": {"host": here + "-other", "pid": dead.pid},
    }
    runs = {}
    for name, data in cases.items():
        run = services.run_start(operator=operator, submission=sub)  # on_commit never fires in this test
        PreflightRun.objects.filter(pk=run.pk).update(status="running")
        services.event_append(run=run, step="run", status="started", message="picked up", data=data)
        services.event_append(run=run, step="converge_change", status="started", message="settling")
        runs[name] = run
    # when any process starts executing a run (or a worker starts)
    failed = services.runs_orphaned_fail()
    # then exactly the runs of dead processes on this host are failed, naming the step
    assert sorted(failed) == sorted([runs["dead"].run_id, runs["reused"].run_id])
    for name, run in runs.items():
        run.refresh_from_db()
        if name in ("dead", "reused"):
            assert run.status == "failed" and "died at step converge_change" in run.error
            assert run.events.order_by("-seq").first().status == "failed"
        else:
            assert run.status == "running"


def test_a_run_restarted_by_a_redelivered_task_is_not_failed_under_its_new_worker(operator, lab, monkeypatch):
    # The race: process C finds the run `running` under its dead worker A; before C takes the row
    # lock, worker B (a redelivered task) restarts the run and commits its own "started" event.
    import os
    import socket
    import subprocess

    from preflight.services import execution
    from twin.runstate import proc_start_time

    sub = services.Submission(lab=lab, title="t", devices=SHIP_READY["devices"], backend="simulator")
    dead = subprocess.Popen(["true"])
    dead.wait()
    here = socket.gethostname()
    run = services.run_start(operator=operator, submission=sub)
    PreflightRun.objects.filter(pk=run.pk).update(status="running")
    services.event_append(run=run, step="run", status="started", message="A", data={"host": here, "pid": dead.pid})
    live = os.getppid()
    real_alive = execution._pid_alive
    calls = []

    def alive_then_b_restarts(pid, start):
        calls.append(pid)
        if len(calls) == 1:  # C has just judged A dead; B's restart lands now
            services.event_append(run=run, step="run", status="started", message="B",
                                  data={"host": here, "pid": live, "pid_start": proc_start_time(live)})
        return real_alive(pid, start)

    monkeypatch.setattr(execution, "_pid_alive", alive_then_b_restarts)
    # when C looks for orphaned runs at that moment
    failed = services.runs_orphaned_fail()
    # then the run B is running is left alone (it was asked again under the lock)
    run.refresh_from_db()
    assert failed == [] and run.status == "running"
    assert calls == [dead.pid, live]


@pytest.mark.django_db(transaction=True)
def test_the_in_process_worker_runs_a_submission_in_the_background(operator, lab, settings):
    # given thread dispatch (no broker), when a change is submitted, then run_start returns at once
    # and the worker thread finishes the run on its own database connection
    from preflight import worker

    settings.AEGIS_RUN_DISPATCH = "thread"
    run = services.run_start(
        operator=operator,
        submission=services.Submission(
            lab=lab,
            title="t",
            devices=SHIP_READY["devices"],
            expect=SHIP_READY["expect"],
            backend="simulator",
        ),
    )
    assert run.status == "queued"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.done:
            break
        time.sleep(0.1)
    worker.shutdown(wait=True)
    assert (run.status, run.verdict) == ("finished", "ship_ready")
    assert connection.vendor in ("postgresql", "sqlite")


@pytest.mark.parametrize(
    "intent, llm_url, words",
    [
        ("advertise 10.42.0.0/24 from r3", "", "No LLM is configured"),
        ("advertise 10.42.0.0/24\u202e from r3", "http://127.0.0.1:9/v1", "invisible or control character"),
        ("ok", "http://127.0.0.1:9/v1", "too short"),
    ],
)
def test_an_intent_is_checked_before_anything_is_written(operator, lab, settings, intent, llm_url, words):
    # given an intent instead of config, when the site has no LLM or the intent is unsafe,
    # then the intent field says why and nothing is written (the LLM is never asked)
    settings.AEGIS_LLM_URL = llm_url
    settings.AEGIS_LLM_GGUF = ""
    with pytest.raises(services.ChangeInvalid) as caught:
        services.run_start(
            operator=operator,
            submission=services.Submission(lab=lab, title="By intent", intent=intent, backend="simulator"),
        )
    assert words in " ".join(caught.value.errors["intent"])
    assert PreflightRun.objects.count() == 0
