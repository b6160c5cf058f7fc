"""Execution: one queued run goes through the pipeline, its result is recorded, written and sealed.

Every run executes here, whoever started it and wherever it runs (a Celery worker, the web
process's worker thread, or the CLI's own process): the same steps, events, files and seal.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from aegis_base.core import policy
from aegis_base.core.files import atomic_write
from evidence.models import Bundle
from evidence.services import bundle_grant_view, run_seal
from perimeter.egress import EgressRefused
from preflight.core.change import ChangeError
from preflight.core.guards import GuardRejection
from preflight.core.pipeline import run_preflight
from preflight.llm.config import LLMConfigError, llm_config_from_settings
from preflight.llm.intent import IntentRejected
from preflight.llm.run import preflight_intent
from preflight.models import ChangeRequest, PreflightRun
from preflight.selectors import blast_radius
from preflight.services.events import event_append, json_safe
from preflight.services.labs import lab_dir, lab_topology
from twin import get_backend
from twin.base import TopologyError, TwinError
from twin.runstate import is_zombie, pid_matches, proc_start_time

log = logging.getLogger("aegis.web")

# Sees each pipeline step as it happens, besides the run's events (the CLI prints them).
Observer = Callable[[str, str, str, dict[str, Any]], None]

# Run options (PreflightRun.options) that are keyword arguments of `run_preflight`, with their
# type; a run's own value wins over the site default. Add a pipeline option here and in the
# Submission that sets it.
PIPELINE_OPTIONS: dict[str, type] = {"converge_timeout": float, "failures": str}


class RunAborted(Exception):
    """The run could not go on for a reason outside the change (e.g. the server restarted)."""


def run_folder(run: PreflightRun) -> Path:
    """The one folder of a run's files (result.json, bundle.json, report.pdf): its own, or AEGIS_RUNS_DIR/<id>."""
    return Path(run.folder) if run.folder else Path(settings.AEGIS_RUNS_DIR) / run.run_id


def run_execute(*, run_pk: int, observer: Observer | None = None, twin_pool: Any = None) -> str:
    """Execute one queued run: propose (intent), pipeline, record, write, seal, grant. Returns the status.

    `twin_pool`: a long-lived worker's warm-twin pool (twin/pool.py), or None for a twin of the run's own.

    Safe to call twice (a redelivered task): a finished or failed run is left alone. Never raises
    for a run that exists: every failure becomes status `failed` with a message and an event.
    An interrupt (the CLI's Ctrl-C or SIGTERM) fails the run, then propagates: the pipeline's
    own `finally` has torn the twin down by then.
    """
    # A CLI or worker killed mid-run (SIGKILL, OOM) on this host left its run `running`: the
    # next process that executes a run says so on that run (its twin is reaped at spawn).
    runs_orphaned_fail()
    with transaction.atomic():
        run = (
            PreflightRun.objects.select_for_update()
            .select_related("change", "change__lab", "change__operator")
            .get(pk=run_pk)
        )
        if run.done:
            return run.status
        restarted = run.status == PreflightRun.STATUS_RUNNING
        run.status = PreflightRun.STATUS_RUNNING
        run.started = timezone.now()
        run.save(update_fields=["status", "started"])
        # Which worker runs it (host and process): the operator and the admin can find its log.
        # pid_start tells this process from a later one that reuses its pid (runs_orphaned_fail).
        # Written in the same transaction as the status: another process looking for orphaned
        # runs must never see this run `running` under the dead worker that had it before.
        worker = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": proc_start_time(os.getpid())}
        if restarted:
            event_append(
                run=run,
                step="run",
                status="info",
                message="The worker that had this run stopped; starting it again from the beginning.",
            )
        event_append(
            run=run,
            step="run",
            status="started",
            data=worker,
            message=f"Worker {worker['host']}:{worker['pid']} picked up the run ({run.backend} twin).",
        )
    try:
        result = _pipeline(run, observer, twin_pool)
    except KeyboardInterrupt as exc:
        _run_fail(run, RunAborted(f"Interrupted ({exc or 'SIGINT'}); the twin was torn down, nothing was sealed."))
        raise
    except Exception as exc:  # noqa: BLE001 - recorded as a failed run, shown to the operator
        return _run_fail(run, exc)
    _run_record(run, result)
    _run_seal(run, result)
    _run_complete(run)
    return run.status


def _progress_for(run: PreflightRun, observer: Observer | None):
    def progress(step: str, status: str, message: str, data: dict[str, Any]) -> None:
        event_append(run=run, step=step, status=status, message=message, data=data)
        if observer is not None:
            observer(step, status, message, data)

    return progress


def _pipeline(run: PreflightRun, observer: Observer | None = None, twin_pool: Any = None) -> dict[str, Any]:
    """Run the pipeline on the run's change with the site's defaults and the run's own options."""
    change = run.change
    topology = lab_topology(change.lab)
    options: dict[str, Any] = {
        "backend": twin_backend_for(run),
        "run_id": run.run_id,
        "progress": _progress_for(run, observer),
        "converge_timeout": float(settings.AEGIS_TWIN_CONVERGE_TIMEOUT_S),
        "default_criticality": settings.AEGIS_DEFAULT_CRITICALITY,
        "failures_max": settings.AEGIS_FAILURE_SCENARIOS_MAX,
        "twin_pool": twin_pool,
    }
    for name, kind in PIPELINE_OPTIONS.items():
        if run.options.get(name) is not None:
            options[name] = kind(run.options[name])
    if change.intent:
        # The LLM proposes; the same pipeline verifies. A botched proposal is a blocked result
        # with the reason and the model's provenance, sealed like any other run.
        result = preflight_intent(
            lab_dir(change.lab),
            change.intent,
            config=llm_config_from_settings(settings),
            topology=topology,
            **options,
        )
        proposed = (result.get("change") or {}).get("devices") or {}
        ChangeRequest.objects.filter(pk=change.pk).update(devices=proposed)
        return result
    # The change was parsed and prechecked when it was submitted; the pipeline takes the parts
    # as they were stored (and checks its own input, as its contract says).
    change_dict = {
        "title": change.title,
        "description": change.description,
        "devices": change.devices,
        "expect": change.expect or None,
        "source": change.source,
    }
    if change.desired:
        change_dict["desired"] = change.desired  # sealed with the result: what the delta was computed from
    return run_preflight(lab_dir(change.lab), change_dict, topology=topology, **options)


def twin_backend_for(run: PreflightRun) -> Any:
    """The backend a run names: the name itself, or for `http` the agent client(s) (run options, else site)."""
    if run.backend != "http":
        return run.backend
    return get_backend(
        "http",
        agents=list(run.options.get("agents") or settings.AEGIS_TWIN_AGENTS),
        allow=list(settings.AEGIS_EGRESS_ALLOW),
        token_file=run.options.get("agent_token_file") or settings.AEGIS_AGENT_TOKEN_FILE or None,
        tls_ca=settings.AEGIS_AGENT_TLS_CA or None,
        tls_cert=settings.AEGIS_AGENT_CLIENT_CERT or None,
        tls_key=settings.AEGIS_AGENT_CLIENT_KEY or None,
    )


# Exceptions whose message is already a sentence for the operator (bad input, not a bug).
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ChangeError, GuardRejection, TopologyError, TwinError, RunAborted, EgressRefused, LLMConfigError, IntentRejected
)


def _run_fail(run: PreflightRun, exc: BaseException) -> str:
    input_error = isinstance(exc, INPUT_ERRORS)
    if input_error:
        message = str(exc)
    else:
        # An unexpected error: the operator gets a plain sentence, the log gets the traceback.
        log.error("run %s failed:\n%s", run.run_id, "".join(traceback.format_exception(exc)))
        message = (
            f"The run stopped on an internal error ({type(exc).__name__}: {exc}). An admin can see the log."
        )
    PreflightRun.objects.filter(pk=run.pk).update(
        status=PreflightRun.STATUS_FAILED, error=message, finished=timezone.now()
    )
    run.status = PreflightRun.STATUS_FAILED
    run.error = message
    event_append(
        run=run, step="run", status="failed", message=message, data={"status": "failed", "input_error": input_error}
    )
    return run.status


def _run_record(run: PreflightRun, result: dict[str, Any]) -> None:
    """Store the result and verdict, and write result.json; the run stays `running` until sealed."""
    risk = result.get("risk") or {}
    with transaction.atomic():
        PreflightRun.objects.filter(pk=run.pk).update(
            verdict=result.get("verdict", ""),
            risk_tier=risk.get("tier", ""),
            risk_score=risk.get("score"),
            result=json_safe(result),
            blast=blast_radius(result),
        )
        run.verdict = result.get("verdict", "")
        run.risk_tier = risk.get("tier", "")
        if run.verdict == "needs_approval":
            # Approvers see the runs that need them; nobody else gains anything.
            approvers, _ = Group.objects.get_or_create(name=policy.APPROVER)
            assign_perm("preflight.view_preflightrun", approvers, run)
    try:
        result_write(run_folder(run), result)
    except OSError as exc:  # the row is the record; the file is a convenience beside the evidence
        event_append(run=run, step="run", status="info",
                     message=f"result.json not written into {run_folder(run)}: {exc.strerror or exc}")


def result_write(folder: Path, result: dict[str, Any]) -> Path:
    """Write the result document as folder/result.json, whole or not at all. The one writer of it."""
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write(folder / "result.json", json.dumps(result, indent=2, sort_keys=False, default=str) + "\n")


def _run_complete(run: PreflightRun) -> None:
    """Mark the run finished; its last event tells watching pages to show the full result."""
    PreflightRun.objects.filter(pk=run.pk).update(
        status=PreflightRun.STATUS_FINISHED, finished=timezone.now()
    )
    run.status = PreflightRun.STATUS_FINISHED
    event_append(
        run=run,
        step="run",
        status="ok" if run.verdict != "blocked" else "info",
        message=f"Finished. Verdict: {run.verdict.replace('_', ' ')}.",
        data={"status": "finished", "verdict": run.verdict, "risk": run.risk_tier or None},
    )


def _run_seal(run: PreflightRun, result: dict[str, Any]) -> None:
    """Seal the evidence bundle and the examiner PDF into the run's folder (unless the run says not to)."""
    if run.options.get("seal") is False:
        event_append(run=run, step="seal", status="info", message="Not sealed: the run asked for a result only.")
        return
    event_append(run=run, step="seal", status="started", message="Sealing the evidence bundle.")
    change = run.change
    started = time.monotonic()
    try:
        outcome = run_seal(
            result,
            lab_dir=lab_dir(change.lab),
            change_text=change.change_text or None,
            out_dir=run_folder(run),
            # None: the site's AEGIS_FRAMEWORKS, as for a change that chose none.
            frameworks=list(change.frameworks) or None,
            operator=change.operator.get_username(),
        )
    except Exception as exc:  # noqa: BLE001 - the verdict stands; the missing seal is said plainly
        log.error("sealing run %s failed:\n%s", run.run_id, "".join(traceback.format_exception(exc)))
        PreflightRun.objects.filter(pk=run.pk).update(error=f"Sealing failed: {exc}")
        run.error = f"Sealing failed: {exc}"
        event_append(run=run, step="seal", status="failed", message=f"Sealing failed: {exc}")
        return
    PreflightRun.objects.filter(pk=run.pk).update(bundle_digest=str(outcome.digest))
    run.bundle_digest = str(outcome.digest)
    if run.verdict == "needs_approval":
        # The approvers who may see the run may see (and download) its evidence.
        approvers, _ = Group.objects.get_or_create(name=policy.APPROVER)
        bundle_grant_view(Bundle.objects.get(pk=outcome.bundle_id), approvers)
    event_append(
        run=run,
        step="seal",
        status="ok",
        message=f"Sealed {outcome.digest} in {time.monotonic() - started:.1f} s.",
        data={"digest": str(outcome.digest), "bundle_id": str(outcome.bundle_id),
              "ledger_index": outcome.ledger_index},
    )


def runs_recover() -> int:
    """Fail runs left queued/running by an in-process worker that is gone (server restart).

    Only for thread dispatch, at server start: a Celery broker redelivers its own tasks.
    """
    stale = list(
        PreflightRun.objects.filter(status__in=[PreflightRun.STATUS_QUEUED, PreflightRun.STATUS_RUNNING])
    )
    stale = [run for run in stale if not _worker_alive(run)]
    for run in stale:
        # The step it died in tells the operator (and the chaos test) where it stopped.
        step = run.events.exclude(step="run").order_by("-seq").values_list("step", flat=True).first()
        where = f"running (at step {step})" if step else "waiting"
        _run_fail(run, RunAborted(f"The server restarted while this run was {where}; submit it again."))
    return len(stale)


def run_fail_undispatched(run_pk: int, exc: BaseException) -> None:
    """Fail a queued run that could not be handed to the task queue (`exc` says why). Never raises."""
    try:
        run = PreflightRun.objects.get(pk=run_pk, status=PreflightRun.STATUS_QUEUED)
        _run_fail(run, RunAborted(f"The task queue could not take this run ({type(exc).__name__}: {exc}); "
                                  "nothing ran. Submit it again once the queue is back."))
    except Exception:  # noqa: BLE001 - the caller reports the outage itself
        log.exception("could not mark run %s failed after its dispatch failed", run_pk)


def runs_orphaned_fail() -> list[str]:
    """Fail the running runs whose process on this host is dead (a killed CLI or worker); their run ids.

    Safe in every dispatch mode and at any time: a run counts as orphaned only when the process
    named by its last "run started" event (host, pid and that pid's start time) is gone, so a
    run still queued, running elsewhere or restarted by a redelivered task is left alone. The
    message names the step the run was in. Never raises (called at every process start).
    """
    failed: list[str] = []

    def dead_owner(run: PreflightRun) -> dict[str, Any] | None:
        started = run.events.filter(step="run", status="started").order_by("-seq").first()
        data = started.data if started is not None else {}
        if data.get("host") != socket.gethostname() or not isinstance(data.get("pid"), int) \
                or data["pid"] == os.getpid() or _pid_alive(data["pid"], data.get("pid_start")):
            return None
        return data

    try:
        for run in PreflightRun.objects.filter(status=PreflightRun.STATUS_RUNNING):
            if dead_owner(run) is None:
                continue
            with transaction.atomic():
                row = PreflightRun.objects.select_for_update(skip_locked=True).filter(
                    pk=run.pk, status=PreflightRun.STATUS_RUNNING).first()
                # Asked again under the row lock: a redelivered task may have restarted the run
                # (a new "started" event, committed with its status) since the first look.
                data = dead_owner(row) if row is not None else None
                if row is None or data is None:
                    continue
                step = row.events.exclude(step="run").order_by("-seq").values_list("step", flat=True).first()
                where = f"at step {step}" if step else "before its first step"
                # Killed while sealing: the transaction died with it (no leaf, no row); only the
                # seal's staging folder beside the run folder is left to remove.
                folder = run_folder(row)
                for staging in folder.parent.glob(f".{folder.name}.sealing-*"):
                    shutil.rmtree(staging, ignore_errors=True)
                _run_fail(row, RunAborted(
                    f"The process running this run ({data['host']}:{data['pid']}) died {where}; its twin is "
                    "removed by the next AEGIS process on that host and nothing was sealed. Submit it again."))
                failed.append(row.run_id)
    except Exception:  # noqa: BLE001 - housekeeping must never stop the process that does it
        log.exception("failing orphaned runs")
    if failed:
        log.warning("marked %d run(s) failed whose process had died: %s", len(failed), ", ".join(failed))
    return failed


def _pid_alive(pid: int, start: int | None) -> bool:
    """PID is the same live process (not a zombie, not a later one with the same number)."""
    return pid_matches(pid, start) and not is_zombie(pid)


def _worker_alive(run: PreflightRun) -> bool:
    """A run executing in another live process of this host (a CLI run) is not stale."""
    started = run.events.filter(step="run", status="started").order_by("-seq").first()
    data = started.data if started is not None else {}
    pid = data.get("pid")
    if data.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True
