"""Submission: a change (config per device, a change file, or an intent) becomes a `ChangeRequest`
and a `PreflightRun`, the same way from the web form, the API, the MCP/LLM path and the CLI.

`run_start` is the one way in. It validates before it writes (nothing is written for bad
input), records the rows, the first event and the audit entry, grants the operator, and hands
the run to the site's dispatch after commit, or, for the CLI (`dispatch="inline"`), executes it
in the calling process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from guardian.shortcuts import assign_perm

from aegis_base.core import policy
from aegis_base.selectors import actor_of
from aegis_base.services import audit_record
from compliance.selectors import framework_choices
from preflight.core.change import ChangeError, change_from_parts, change_load
from preflight.core.desired import change_from_desired
from preflight.core.guards import GuardRejection, precheck
from preflight.llm.config import LLMConfigError, llm_config_from_settings
from preflight.llm.intent import IntentRejected, intent_check
from preflight.models import ChangeRequest, Lab, PreflightRun
from preflight.pool_client import HolderUnavailable, holder_run
from preflight.services.dispatch import run_dispatch
from preflight.services.events import event_append
from preflight.services.execution import Observer, run_execute, run_folder
from preflight.services.labs import lab_topology
from twin import BACKENDS
from twin.base import TopologyError, TwinError


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


def change_validate_desired(
    *,
    lab: Lab,
    title: str,
    description: str,
    desired: dict[str, str],
    expect: dict[str, Any] | None,
    source: str,
    origin: str = "",
) -> dict[str, Any]:
    """The change that moves the lab from its baseline to `desired` (full config per router), by
    frr-reload's delta, checked by the guards before and after; raise ChangeInvalid. Changes nothing.

    Field `desired:<node>` (or `__all__`) carries the message; the change dict has `desired` (digests,
    delta, origin) besides the usual parts.
    """
    try:
        topology = lab_topology(lab)
    except (TopologyError, OSError) as exc:
        raise ChangeInvalid({"lab": [f"Lab {lab.name} cannot be loaded: {exc}"]}) from None
    try:
        return change_from_desired(topology, desired, title=title.strip() or None, description=description,
                                   expect=expect, source=source, origin=origin)
    except GuardRejection as exc:
        field = f"desired:{exc.device}" if exc.device in desired else "__all__"
        raise ChangeInvalid({field: [str(exc)]}) from None
    except ChangeError as exc:
        raise ChangeInvalid({_error_field(str(exc), {}): [str(exc)]}) from None
    except TwinError as exc:  # frr-reload or vtysh missing on this host
        raise ChangeInvalid({"__all__": [f"the delta cannot be computed here: {exc}"]}) from None


def change_validate_text(*, lab: Lab, text: str) -> dict[str, Any]:
    """Parse and validate a change file (YAML: title, devices, expect) as the pipeline will; raise ChangeInvalid.

    Field `change` carries the message (it names the line or key to fix). Changes nothing.
    """
    try:
        topology = lab_topology(lab)
    except (TopologyError, OSError) as exc:
        raise ChangeInvalid({"lab": [f"Lab {lab.name} cannot be loaded: {exc}"]}) from None
    try:
        change = change_load(text, topology)
        precheck(change, topology)
    except (ChangeError, GuardRejection) as exc:
        raise ChangeInvalid({"change": [str(exc)]}) from None
    return change


@dataclass
class Submission:
    """What an operator submits. Exactly one of `devices`, `change_text` and `intent` says what to change.

    `options` are the run's own pipeline options over the site defaults (e.g. `converge_timeout`,
    `agents` for the http backend; see `execution.PIPELINE_OPTIONS`), `folder` where its files go
    (default AEGIS_RUNS_DIR/<run id>), `seal=False` for a result without evidence (CLI --no-seal).
    """

    lab: Lab
    title: str = ""
    description: str = ""
    devices: dict[str, str] | None = None
    change_text: str = ""  # a change file (YAML), parsed here once; sealed with the run
    desired: dict[str, str] | None = None  # full intended config per router: the delta is what runs
    desired_origin: str = ""  # where the desired configs came from, e.g. "git A..B (…)"
    intent: str = ""
    expect: dict[str, Any] | None = None
    frameworks: list[str] | None = None
    backend: str = ""
    source: str = "form"
    options: dict[str, Any] = field(default_factory=dict)
    folder: str = ""
    seal: bool = True
    via: str = "web"  # web | api | cli | mcp: recorded in the audit entry


def run_start(
    *, operator: Any, submission: Submission, dispatch: str | None = None, observer: Observer | None = None
) -> PreflightRun:
    """Record a change request and its run, grant the operator view rights, and start the run.

    Checks the operator role itself (refuses with PermissionError); validates the change as the
    pipeline will (ChangeInvalid), so nothing is written for bad input. The run is handed to the
    site's dispatch after commit; `dispatch="inline"` executes it here before returning (the CLI,
    whose `observer` sees every pipeline step as it happens); `dispatch="warm"` has the
    `manage.py twin_pool serve` holder execute it with its warm twins while this call waits
    (inline when no holder runs).
    """
    if not policy.can_submit(actor_of(operator)):
        raise PermissionError("Only members of the operator group can submit changes.")
    sub = submission
    backend = sub.backend or settings.AEGIS_TWIN_BACKEND
    errors: dict[str, list[str]] = {}
    if backend not in BACKENDS:
        errors["backend"] = [f"Unknown twin backend {backend!r}; choose one of: {', '.join(BACKENDS)}."]
    elif backend == "http" and not (sub.options.get("agents") or settings.AEGIS_TWIN_AGENTS):
        errors["backend"] = ["The http backend needs twin agents: the administrator sets AEGIS_TWIN_AGENTS."]
    if not sub.lab.enabled:
        errors["lab"] = [f"Lab {sub.lab.name} is disabled by an administrator."]
    frameworks = list(dict.fromkeys(sub.frameworks or []))
    known = framework_ids()
    unknown = [f for f in frameworks if f not in known]
    if unknown:
        errors["frameworks"] = [f"Unknown framework {', '.join(unknown)}; choose from {', '.join(sorted(known))}."]
    devices = {k: v for k, v in (sub.devices or {}).items() if v and v.strip()}
    intent = (sub.intent or "").strip()
    given = [what for what, there in (("devices", devices), ("change file", sub.change_text), ("intent", intent),
                                      ("desired configs", sub.desired))
             if there]
    if len(given) > 1:
        errors["__all__"] = [f"Give either config per device, desired configs, a change file or an intent, not {' and '.join(given)}."]
    elif not given:
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
    elif sub.desired:
        source = sub.source
        change_dict = change_validate_desired(lab=sub.lab, title=sub.title, description=sub.description,
                                              desired=sub.desired, expect=sub.expect, source=source,
                                              origin=sub.desired_origin)
    elif sub.change_text:
        change_dict = change_validate_text(lab=sub.lab, text=sub.change_text)
        source = change_dict.get("source") or "file"
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
            expect=_expect_stored(change_dict) if sub.change_text else sub.expect or {},
            frameworks=frameworks,
            source=source,
            change_text=sub.change_text,
            desired=change_dict.get("desired") or {},
        )
        options = {**sub.options, **({} if sub.seal else {"seal": False})}
        run = PreflightRun.objects.create(change=change, backend=backend, options=options, folder=sub.folder)
        assign_perm("preflight.view_changerequest", operator, change)
        assign_perm("preflight.view_preflightrun", operator, run)
        event_append(run=run, step="queued", status="info", message=f"Queued on the {backend} twin.")
        audit_record(
            actor=operator,
            action="run.submit",
            target=f"run:{run.run_id}",
            detail={"lab": sub.lab.name, "backend": backend, "source": source, "via": sub.via},
        )
        if dispatch != "inline":
            transaction.on_commit(lambda: run_dispatch(run.pk, mode=dispatch))
    if dispatch == "inline":
        # The caller's process is the worker (the CLI): the run executes here and now.
        run_execute(run_pk=run.pk, observer=observer)
        run.refresh_from_db()
    elif dispatch == "warm":
        _run_execute_warm(run, observer)
        run.refresh_from_db()
    return run


def _run_execute_warm(run: PreflightRun, observer: Observer | None) -> None:
    """`preflight --warm`: the twin_pool holder executes the run with its warm twins, while the
    caller waits and sees every step; with no holder, the caller executes it itself (cold) and
    the run's events say so."""
    def accepted(doc: dict[str, Any]) -> None:
        if observer is not None:
            observer("run", "info", f"executed by the twin_pool holder (pid {doc.get('pid')}) with its warm twins", {})

    if not run.folder:
        # The files go where this caller looks for them, whatever the holder's own AEGIS_RUNS_DIR.
        run.folder = str(run_folder(run).resolve())
        run.save(update_fields=["folder"])
    try:
        holder_run(settings.AEGIS_TWIN_POOL_SOCKET, run.pk, observer, on_accept=accepted)
        return
    except HolderUnavailable as exc:
        message = f"No warm twins: {exc}. This process runs it with a twin of its own (cold)."
    event_append(run=run, step="run", status="info", message=message)
    if observer is not None:
        observer("run", "info", message, {})
    run_execute(run_pk=run.pk, observer=observer)


def _expect_stored(change: dict[str, Any]) -> dict[str, Any]:
    """A change file's validated `expect` as the row keeps it: {} when the file declared none."""
    expect = dict(change.get("expect") or {})
    return {k: v for k, v in expect.items() if k != "declared"} if expect.pop("declared", False) else {}


def cli_operator(username: str) -> Any:
    """The user a command-line run is recorded for: `username`, created on first use as an operator.

    Whoever runs `manage.py` on the server already holds the server's rights, so a new name
    becomes an operator (no password: it signs in nowhere until an admin sets one). An existing
    user must hold the operator role already; this grants nobody a role they did not have.
    Raises PermissionError naming the fix.
    """
    users = get_user_model().objects
    user = users.filter(username=username).first()
    if user is None:
        with transaction.atomic():
            user = users.create_user(username=username)
            user.set_unusable_password()
            user.save(update_fields=["password"])
            user.groups.add(Group.objects.get_or_create(name=policy.OPERATOR)[0])
            audit_record(actor=None, action="user.create", target=f"user:{username}",
                         detail={"why": "first command-line preflight under this name", "role": policy.OPERATOR})
        return user
    if not policy.can_submit(actor_of(user)):
        raise PermissionError(
            f"user {username} does not hold the operator role: an admin adds them to the operator group, "
            "or give --operator NAME of an operator"
        )
    return user


def _intent_validate(intent: str) -> str:
    """The intent as the LLM will get it, or ChangeInvalid on `intent` saying what to fix."""
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
