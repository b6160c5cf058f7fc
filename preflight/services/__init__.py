"""Writes of the preflight app, one module per concern:

- `labs`: the `Lab` rows (sync from AEGIS_LABS_DIR, a folder named on the CLI);
- `submission`: `run_start`, the one way a run begins (web form, API, MCP/LLM, CLI);
- `dispatch`: who executes a committed run (Celery, worker threads, inline);
- `execution`: `run_execute`, the pipeline, the result document, the seal, the run folder;
- `events`: the numbered events of a run and their websocket notification;
- `capacity`: a worker's admission of a twin by memory.

Views, API views, tasks, consumers and commands stay thin and call these. Each function says
what it changes and which permission it assumes the caller has checked (or checks itself).
The names below are the public ones, so `from preflight import services; services.run_start`.
"""

from preflight.services.capacity import run_admit, run_release
from preflight.services.dispatch import dispatch_mode, run_dispatch
from preflight.services.events import event_append, event_publish, run_group
from preflight.services.execution import (
    INPUT_ERRORS,
    PIPELINE_OPTIONS,
    Observer,
    RunAborted,
    result_write,
    run_execute,
    run_folder,
    runs_orphaned_fail,
    runs_recover,
    twin_backend_for,
)
from preflight.services.labs import lab_dir, lab_for_folder, lab_sync, lab_topology
from preflight.services.submission import (
    ChangeInvalid,
    Submission,
    change_validate,
    change_validate_desired,
    change_validate_text,
    cli_operator,
    framework_ids,
    run_start,
)
from twin import BACKENDS

__all__ = [
    "BACKENDS",
    "INPUT_ERRORS",
    "PIPELINE_OPTIONS",
    "ChangeInvalid",
    "Observer",
    "RunAborted",
    "Submission",
    "change_validate",
    "change_validate_desired",
    "change_validate_text",
    "cli_operator",
    "dispatch_mode",
    "event_append",
    "event_publish",
    "framework_ids",
    "lab_dir",
    "lab_for_folder",
    "lab_sync",
    "lab_topology",
    "result_write",
    "run_admit",
    "run_dispatch",
    "run_execute",
    "run_folder",
    "run_group",
    "run_release",
    "run_start",
    "runs_orphaned_fail",
    "runs_recover",
    "twin_backend_for",
]
