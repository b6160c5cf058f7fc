"""Remove the leftovers of twins whose owner process died (a crashed worker, a killed test).

Only run folders under RUN_ROOT named `aegis-<8 hex>` are considered, and only those whose
recorded owner process is gone (PID absent, or reused by a process with another start time).
Everything is removed from the run's own record (see `runstate.destroy`), so a namespace or
process that AEGIS did not create - even one whose name starts with `aegis-` - is never touched.
Then any process still carrying the mark of a run folder that no longer exists (a twin's daemon
that outlived its teardown) is ended (`runstate.reap_strays`).
"""

from __future__ import annotations

import logging
import time

from . import runstate

# A run folder without state.json is a spawn that died between mkdir and the first write
# (nothing else exists yet); leave a young one alone, its owner may be writing right now.
_EMPTY_DIR_GRACE_S = 60.0
log = logging.getLogger("aegis.twin")


def twin_reap() -> list[str]:
    """Tear down every twin whose owner process is dead; return the run ids removed."""
    removed: list[str] = []
    if not runstate.RUN_ROOT.is_dir():
        return removed
    for path in sorted(runstate.RUN_ROOT.iterdir()):
        m = runstate.RUN_FOLDER_RE.match(path.name)
        if not m or not path.is_dir():
            continue
        state = runstate.state_read(path)
        if state is None:
            if time.time() - path.stat().st_mtime < _EMPTY_DIR_GRACE_S:
                continue
        elif state.get("run_id") != m.group(1) or runstate.owner_alive(state):
            continue
        if not runstate.destroy(path):
            removed.append(m.group(1))
    strays = runstate.reap_strays()
    if strays:
        log.warning("ended %d process(es) of twins already torn down: %s", len(strays),
                    ", ".join(map(str, strays)))
    return removed


def twin_runs() -> list[dict]:
    """Every recorded run on this host, with whether its owner is alive (for reporting)."""
    runs = []
    if runstate.RUN_ROOT.is_dir():
        for path in sorted(runstate.RUN_ROOT.iterdir()):
            if runstate.RUN_FOLDER_RE.match(path.name) and (state := runstate.state_read(path)):
                runs.append({"run_id": state.get("run_id"), "lab": state.get("lab"), "label": state.get("label"),
                             "owner_pid": state.get("owner_pid"), "owner_alive": runstate.owner_alive(state),
                             "namespaces": len(state.get("namespaces", []))})
    return runs


def twin_reap_orphans() -> list[str]:
    """`twin_reap` as every AEGIS process runs it when it starts and before each spawn: never raises.

    A CLI preflight killed with SIGKILL, or a worker that died mid-run, cannot tear its own twin
    down; the next AEGIS process on the host does, so no one has to remember `twin_reap`. A host
    where this process may not look (not root) is simply skipped: it cannot have spawned twins.
    """
    try:
        removed = twin_reap()
    except OSError as exc:
        log.debug("twin reaping skipped: %s", exc)
        return []
    if removed:
        log.warning("reaped %d twin(s) whose owner process had died: %s", len(removed), ", ".join(removed))
    return removed
