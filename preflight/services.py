"""Writes of the preflight app: labs, change submission, run execution, run events.

Views, API views, tasks and consumers stay thin and call these. Each function says what it
changes and which permission it assumes the caller has already checked (or checks itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from aegis_base.core import policy
from aegis_base.services import audit_record
from compliance.selectors import framework_choices
from evidence.services import run_seal
from perimeter.egress import EgressRefused
from preflight.llm.config import LLMConfigError
from preflight.llm.intent import IntentRejected
from preflight.models import ChangeRequest, Lab, PreflightRun, RunEvent
from preflight.selectors import actor_of, blast_radius
from twin import get_backend
from twin.base import TopologyError
from twin.capacity import CapacityLedger, default_host_budget_mb, twin_cost_mb
from twin.topology import load_lab

log = logging.getLogger("aegis.web")

BACKENDS = ("netns", "simulator", "http")  # http: a remote twin agent (AEGIS_TWIN_AGENTS)


# ---------------------------------------------------------------------------- labs


def lab_dir(lab: Lab) -> Path:
    folder = Path(lab.folder)
    return folder if folder.is_absolute() else Path(settings.AEGIS_LABS_DIR) / folder


def lab_sync(*, labs_dir: Path | None = None) -> list[Lab]:
    """Create or refresh a `Lab` row for every folder under AEGIS_LABS_DIR holding a `.clab.yml`.

    A lab that does not load is skipped with a warning naming the file and field to fix.
    Admin-only (management command); no permission check here.
    """
    root = Path(labs_dir or settings.AEGIS_LABS_DIR)
    synced: list[Lab] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.clab.yml"))
        if len(files) != 1:
            continue
        try:
            topology = load_lab(folder)
        except TopologyError as exc:
            log.warning("lab %s skipped: %s", folder, exc)
            continue
        digest = "sha256:" + hashlib.sha256(files[0].read_bytes()).hexdigest()
        invariants = _lab_invariants(folder)
        try:
            rel = str(folder.resolve().relative_to(Path(settings.AEGIS_LABS_DIR).resolve()))
        except ValueError:
            rel = str(folder.resolve())
        lab, _ = Lab.objects.update_or_create(
            name=topology.name[:64] or folder.name,
            defaults={
                "folder": rel,
                "digest": digest,
                "routers": topology.routers(),
                "criticality": {
                    n: node.labels.get("aegis.criticality", "")
                    for n, node in topology.nodes.items()
                    if node.role == "frr"
                },
                "invariants": invariants,
            },
        )
        synced.append(lab)
    return synced


def _lab_invariants(folder: Path) -> list[Any]:
    """The lab's declared must-hold checks (aegis.yml), shown on the start page; [] if none."""
    import yaml

    path = folder / "aegis.yml"
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return []
    found = data.get("invariants") if isinstance(data, dict) else None
    return found if isinstance(found, list) else []


def lab_topology(lab: Lab):
    return load_lab(lab_dir(lab))


# ---------------------------------------------------------------------------- submission


class ChangeInvalid(Exception):
    """A submission that cannot run. `errors` maps a field name to messages saying what to fix.

    Field names: lab, title, description, intent, backend, frameworks, expect,
    `device:<node>` for a device's config, and `__all__`.
    """

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def _error_field(message: str, devices: dict[str, str]) -> str:
    """Map a pipeline ChangeError message to the form field it is about."""
    text = message.lstrip("`")
    if text.startswith("title"):
        return "title"
    if text.startswith("description"):
        return "description"
    for key in (
        "prefixes_added",
        "prefixes_removed",
        "prefixes_changed",
        "sessions_removed",
        "sessions_added",
    ):
        if f"expect.{key}" in message:
            return key
    if text.startswith("expect") or "`expect" in message:
        return "expect"
    for node in devices:
        if message.startswith((f"device {node}:", f"device {node!r}", f"device {node},")):
            return f"device:{node}"
    return "__all__"


def change_validate(
    *,
    lab: Lab,
    title: str,
    description: str,
    devices: dict[str, str],
    expect: dict[str, Any] | None,
    source: str,
) -> dict[str, Any]:
    """Validate a change as the pipeline will (change rules + guards) and return the change dict.

    Raises ChangeInvalid with per-field messages; reads the lab from disk, changes nothing.
    """
    from preflight.core.change import ChangeError, change_from_parts
    from preflight.core.guards import GuardRejection, precheck
    try:
        topology = lab_topology(lab)
    except (TopologyError, OSError) as exc:
        raise ChangeInvalid({"lab": [f"Lab {lab.name} cannot be loaded: {exc}"]}) from None
    try:
        change = change_from_parts(
            title=title,
            description=description,
            devices=devices,
            expect=expect,
            source=source,
            topology=topology,
        )
        precheck(change, topology)
    except GuardRejection as exc:
        field = f"device:{exc.device}" if exc.device in devices else "__all__"
        raise ChangeInvalid({field: [str(exc)]}) from None
    except ChangeError as exc:
        raise ChangeInvalid({_error_field(str(exc), devices): [str(exc)]}) from None
    return change


@dataclass
class Submission:
    lab: Lab
    title: str
    description: str = ""
    devices: dict[str, str] | None = None
    intent: str = ""
    expect: dict[str, Any] | None = None
    frameworks: list[str] | None = None
    backend: str = ""
    source: str = "form"


def run_start(*, operator: Any, submission: Submission) -> PreflightRun:
    """Record a change request and its run, grant the operator view rights, enqueue the run on commit.

    Checks the operator role itself (refuses with PermissionError); validates the change as the
    pipeline will (ChangeInvalid), so nothing is written for bad input.
    """
    if not policy.can_submit(actor_of(operator)):
        raise PermissionError("Only members of the operator group can submit changes.")
    sub = submission
    backend = sub.backend or settings.AEGIS_TWIN_BACKEND
    errors: dict[str, list[str]] = {}
    if backend not in BACKENDS:
        errors["backend"] = [f"Unknown twin backend {backend!r}; choose one of: {', '.join(BACKENDS)}."]
    elif backend == "http" and not settings.AEGIS_TWIN_AGENTS:
        errors["backend"] = ["The http backend needs twin agents: the administrator sets AEGIS_TWIN_AGENTS."]
    if not sub.lab.enabled:
        errors["lab"] = [f"Lab {sub.lab.name} is disabled by an administrator."]
    frameworks = list(dict.fromkeys(sub.frameworks or []))
    unknown = sorted(set(frameworks) - set(framework_ids()))
    if unknown:
        errors["frameworks"] = [f"Unknown framework(s): {', '.join(unknown)}."]
    devices = {k: v for k, v in (sub.devices or {}).items() if v and v.strip()}
    intent = (sub.intent or "").strip()
    if devices and intent:
        errors["__all__"] = ["Give either config per device or an intent, not both."]
    elif not devices and not intent:
        errors["__all__"] = ["Paste the config lines for at least one device (or describe an intent)."]
    if errors:
        raise ChangeInvalid(errors)
    if intent:
        intent = _intent_validate(intent)
        source = "llm"
        change_dict: dict[str, Any] = {
            "title": sub.title,
            "description": sub.description,
            "devices": {},
            "expect": sub.expect or {},
        }
        if not sub.title.strip():
            raise ChangeInvalid({"title": ["Give the change a one-line title."]})
    else:
        source = sub.source
        change_dict = change_validate(
            lab=sub.lab,
            title=sub.title,
            description=sub.description,
            devices=devices,
            expect=sub.expect,
            source=source,
        )
    with transaction.atomic():
        change = ChangeRequest.objects.create(
            operator=operator,
            lab=sub.lab,
            title=change_dict["title"],
            description=change_dict["description"],
            devices=change_dict["devices"],
            intent=intent,
            expect=sub.expect or {},
            frameworks=frameworks,
            source=source,
        )
        run = PreflightRun.objects.create(change=change, backend=backend)
        assign_perm("preflight.view_changerequest", operator, change)
        assign_perm("preflight.view_preflightrun", operator, run)
        event_append(run=run, step="queued", status="info", message=f"Queued on the {backend} twin.")
        audit_record(
            actor=operator,
            action="run.submit",
            target=f"run:{run.run_id}",
            detail={"lab": sub.lab.name, "backend": backend, "source": source},
        )
        transaction.on_commit(lambda: run_dispatch(run.pk))
    return run


def _intent_validate(intent: str) -> str:
    """The intent as the LLM will get it, or ChangeInvalid on `intent` saying what to fix."""
    from preflight.llm.config import LLMConfigError, llm_config_from_settings
    from preflight.llm.intent import IntentRejected, intent_check

    try:
        intent = intent_check(intent)
        config = llm_config_from_settings(settings)
    except IntentRejected as exc:
        raise ChangeInvalid({"intent": [str(exc)]}) from None
    except LLMConfigError as exc:
        raise ChangeInvalid({"intent": [f"The site's LLM settings are not usable: {exc}"]}) from None
    if not (config.url or config.gguf):
        raise ChangeInvalid(
            {
                "intent": [
                    "No LLM is configured on this site (AEGIS_LLM_URL or AEGIS_LLM_GGUF); paste the config per device instead."
                ]
            }
        )
    return intent


def framework_ids() -> list[str]:
    return [f["id"] for f in framework_choices()]


# ---------------------------------------------------------------------------- dispatch


def dispatch_mode() -> str:
    """celery when a broker is configured; else the in-process worker thread (a first try).

    AEGIS_RUN_DISPATCH overrides: "inline" runs the job in the committing thread (tests),
    "manual" leaves it queued.
    """
    forced = getattr(settings, "AEGIS_RUN_DISPATCH", "")
    if forced:
        return forced
    return "celery" if settings.CELERY_BROKER_URL else "thread"


def run_dispatch(run_pk: int) -> None:
    """Hand a committed run to whatever executes runs here. Called from on_commit only."""
    mode = dispatch_mode()
    if mode == "celery":
        from preflight.tasks import run_execute_task

        run_execute_task.delay(run_pk)
    elif mode == "inline":
        run_execute(run_pk=run_pk)
    elif mode == "thread":
        from preflight import worker

        worker.submit(run_pk)
    elif mode != "manual":  # manual: left queued for an admin or a test to execute
        log.error(
            "AEGIS_RUN_DISPATCH=%r is not celery, thread, inline or manual; run %s stays queued", mode, run_pk
        )


# ---------------------------------------------------------------------------- events


def run_group(run_id: str) -> str:
    return f"aegis-run-{run_id}"


def _json_safe(data: Any) -> Any:
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
            run_id=run.pk, seq=seq, step=step[:40], status=status[:10], message=message, data=_json_safe(data)
        )
        run.last_seq = seq
        payload = event.as_dict()
        run_id = run.run_id
        transaction.on_commit(lambda: event_publish(run_id, payload))
    return event


def event_publish(run_id: str, event: dict[str, Any]) -> None:
    """Notify websocket clients of a committed event. Never raises: the database is the record."""
    try:
        from channels.layers import InMemoryChannelLayer, get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "run.event", "event": event}
        group = run_group(run_id)
        if isinstance(layer, InMemoryChannelLayer):
            # The in-memory layer lives in one event loop (the ASGI server's); hand the send to
            # that loop, or nobody is listening in this process and there is nothing to do.
            from preflight.consumers import server_loop

            loop = server_loop()
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
        from asgiref.sync import async_to_sync

        async_to_sync(layer.group_send)(group, message)
    except Exception:  # noqa: BLE001 - a lost notification is recovered by catch-up by seq
        log.warning("could not publish event %s of run %s", event.get("seq"), run_id, exc_info=True)


# ---------------------------------------------------------------------------- execution


def run_execute(*, run_pk: int) -> str:
    """Execute one queued run: propose (intent), pipeline, persist, seal, grant. Returns the status.

    Safe to call twice (a redelivered task): a finished or failed run is left alone. Never raises
    for a run that exists: every failure becomes status `failed` with a message and an event.
    """
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
    if restarted:
        event_append(
            run=run,
            step="run",
            status="info",
            message="The worker that had this run stopped; starting it again from the beginning.",
        )
    # Which worker ran it (host and process): the operator and the admin can find its log.
    worker = {"host": socket.gethostname(), "pid": os.getpid()}
    event_append(
        run=run,
        step="run",
        status="started",
        data=worker,
        message=f"Worker {worker['host']}:{worker['pid']} picked up the run ({run.backend} twin).",
    )
    try:
        result = _pipeline(run)
    except Exception as exc:  # noqa: BLE001 - recorded as a failed run, shown to the operator
        return _run_fail(run, exc)
    _run_record(run, result)
    _run_seal(run, result)
    _run_complete(run)
    return run.status


def _progress_for(run: PreflightRun):
    def progress(step: str, status: str, message: str, data: dict[str, Any]) -> None:
        event_append(run=run, step=step, status=status, message=message, data=data)

    return progress


def _pipeline(run: PreflightRun) -> dict[str, Any]:
    from preflight.core.change import change_from_parts
    from preflight.core.pipeline import run_preflight

    change = run.change
    topology = lab_topology(change.lab)
    options = {
        "backend": twin_backend_for(run.backend),
        "run_id": run.run_id,
        "progress": _progress_for(run),
        "converge_timeout": float(settings.AEGIS_TWIN_CONVERGE_TIMEOUT_S),
        "default_criticality": settings.AEGIS_DEFAULT_CRITICALITY,
    }
    if change.intent:
        # The LLM proposes; the same pipeline verifies. A botched proposal is a blocked result
        # with the reason and the model's provenance, sealed like any other run.
        from preflight.llm.config import llm_config_from_settings
        from preflight.llm.run import preflight_intent

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
    change_dict = change_from_parts(
        title=change.title,
        description=change.description,
        devices=change.devices,
        expect=change.expect or None,
        source=change.source,
        topology=topology,
    )
    return run_preflight(lab_dir(change.lab), change_dict, **options)


class RunAborted(Exception):
    """The run could not go on for a reason outside the change (e.g. the server restarted)."""


def twin_backend_for(name: str) -> Any:
    """The backend a run names: the name itself, or for `http` the site's agent client(s)."""
    if name != "http":
        return name
    return get_backend("http", agents=list(settings.AEGIS_TWIN_AGENTS), allow=list(settings.AEGIS_EGRESS_ALLOW),
                       token_file=settings.AEGIS_AGENT_TOKEN_FILE or None)


def _input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is already a sentence for the operator (bad input, not a bug)."""
    from preflight.core.change import ChangeError
    from preflight.core.guards import GuardRejection
    return (ChangeError, GuardRejection, TopologyError, RunAborted, EgressRefused, LLMConfigError, IntentRejected)


def _run_fail(run: PreflightRun, exc: BaseException) -> str:
    if isinstance(exc, _input_errors()):
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
    event_append(run=run, step="run", status="failed", message=message, data={"status": "failed"})
    return run.status


def _run_record(run: PreflightRun, result: dict[str, Any]) -> None:
    """Store the result and verdict; the run stays `running` until its evidence is sealed."""
    risk = result.get("risk") or {}
    with transaction.atomic():
        PreflightRun.objects.filter(pk=run.pk).update(
            verdict=result.get("verdict", ""),
            risk_tier=risk.get("tier", ""),
            risk_score=risk.get("score"),
            result=_json_safe(result),
            blast=blast_radius(result),
        )
        run.verdict = result.get("verdict", "")
        run.risk_tier = risk.get("tier", "")
        if run.verdict == "needs_approval":
            # Approvers see the runs that need them; nobody else gains anything.
            approvers, _ = Group.objects.get_or_create(name=policy.APPROVER)
            assign_perm("preflight.view_preflightrun", approvers, run)


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
    """Seal the evidence bundle and the examiner PDF."""
    event_append(run=run, step="seal", status="started", message="Sealing the evidence bundle.")
    change = run.change
    started = time.monotonic()
    try:
        outcome = run_seal(
            result,
            lab_dir=lab_dir(change.lab),
            change_text=None,
            out_dir=Path(settings.AEGIS_RUNS_DIR) / run.run_id,
            frameworks=list(change.frameworks),
            operator=change.operator.username,
        )
    except Exception as exc:  # noqa: BLE001 - the verdict stands; the missing seal is said plainly
        log.error("sealing run %s failed:\n%s", run.run_id, "".join(traceback.format_exception(exc)))
        PreflightRun.objects.filter(pk=run.pk).update(error=f"Sealing failed: {exc}")
        event_append(run=run, step="seal", status="failed", message=f"Sealing failed: {exc}")
        return
    PreflightRun.objects.filter(pk=run.pk).update(
        bundle_digest=str(outcome.digest),
        bundle_path=str(outcome.bundle_path or ""),
        pdf_path=str(outcome.pdf_path or ""),
    )
    run.bundle_digest = str(outcome.digest)
    event_append(
        run=run,
        step="seal",
        status="ok",
        message=f"Sealed {outcome.digest} in {time.monotonic() - started:.1f} s.",
        data={"digest": str(outcome.digest), "bundle_id": str(outcome.bundle_id)},
    )


def runs_recover() -> int:
    """Fail runs left queued/running by an in-process worker that is gone (server restart).

    Only for thread dispatch, at server start: a Celery broker redelivers its own tasks.
    """
    stale = list(
        PreflightRun.objects.filter(status__in=[PreflightRun.STATUS_QUEUED, PreflightRun.STATUS_RUNNING])
    )
    for run in stale:
        # The step it died in tells the operator (and the chaos test) where it stopped.
        step = run.events.exclude(step="run").order_by("-seq").values_list("step", flat=True).first()
        where = f"running (at step {step})" if step else "waiting"
        _run_fail(run, RunAborted(f"The server restarted while this run was {where}; submit it again."))
    return len(stale)


# ---------------------------------------------------------------------------- twin capacity


def _capacity_ledger() -> Any:
    budget = int(settings.AEGIS_WORKER_BUDGET_MB) or default_host_budget_mb()
    return CapacityLedger(settings.AEGIS_CAPACITY_LEDGER, budget)


def run_admit(*, run_pk: int) -> int | None:
    """Reserve this host's memory for a queued run's twin; None when admitted, else the MB it needs.

    Only `netns` runs spawn on the worker's own host (an `http` agent keeps its own budget, the
    simulator needs none). A run that waits gets one event, "queued for capacity (needs ~N MB)",
    shown on its page until a worker admits it. Assumes the caller is a worker.
    """
    run = PreflightRun.objects.select_related("change", "change__lab").get(pk=run_pk)
    if run.done or run.backend != "netns":
        return None
    try:
        need = twin_cost_mb(lab_topology(run.change.lab))
    except TopologyError:
        return None  # the pipeline reports the broken lab as an input error
    ledger = _capacity_ledger()
    try:
        admitted, free = ledger.admit(run.run_id, need)
    except OSError as exc:  # a ledger this process cannot write: run unbounded, and say so in the log
        log.warning("capacity ledger %s not usable (%s); admitting run %s", settings.AEGIS_CAPACITY_LEDGER,
                    exc, run.run_id)
        return None
    if admitted:
        return None
    message = (f"queued for capacity (needs ~{need} MB; this worker host has {max(free, 0)} MB free of its "
               f"{ledger.budget_mb} MB twin budget)")
    last = run.events.order_by("-seq").first()
    if last is None or not last.message.startswith("queued for capacity"):
        event_append(run=run, step="queued", status="info", message=message,
                     data={"needs_mb": need, "free_mb": free, "budget_mb": ledger.budget_mb})
    return need


def run_release(*, run_pk: int) -> None:
    """Give back the memory reserved by `run_admit` (the run finished, failed or was never admitted)."""
    run = PreflightRun.objects.filter(pk=run_pk).only("run_id").first()
    if run is None:
        return
    try:
        _capacity_ledger().release(run.run_id)
    except OSError:
        pass
