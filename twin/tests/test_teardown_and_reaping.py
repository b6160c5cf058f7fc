"""Teardown is complete when it returns; a dead owner's twin is reaped by the next AEGIS process.

"Complete" means gone from the process table, zombies included: FRR daemons fork into the
background, and before AEGIS adopted them (runstate.become_subreaper) `ps` right after a
lab_check still listed a dozen `<defunct>` daemons waiting for PID 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from twin import runstate
from twin.topology import load_lab

from .conftest import LABS, REPO, leftovers_of, recorded_pids, requires_netns
from .test_reap_and_commands import CHILD

pytestmark = [requires_netns, pytest.mark.twin]


def in_process_table(pids: list[int], starts: dict[int, int | None]) -> list[int]:
    """PIDs still listed in /proc as the same process (a zombie counts: it is still there)."""
    return [p for p in pids if runstate.proc_start_time(p) is not None
            and runstate.proc_start_time(p) == starts[p]]


def test_teardown_returns_only_when_every_daemon_left_the_process_table():
    from twin.netns import NetnsBackend

    twin = NetnsBackend().spawn(load_lab(LABS / "triangle"))
    pids = recorded_pids(twin)
    starts = {p: runstate.proc_start_time(p) for p in pids}
    assert len(pids) >= 3 * 3  # holder, zebra, staticd, bgpd per router
    # every process of the twin carries its mark (what finds a daemon that forked unrecorded)
    assert {runstate.proc_mark(p) for p in pids} == {str(twin.dir)}
    daemons = [(d, p) for node in twin.state["daemons"].values() for d, (p, _) in node.items()]
    # when the twin is torn down
    twin.teardown()
    # then, at once, no daemon of it is in the process table (not even <defunct>) and no namespace is left
    assert in_process_table(pids, starts) == []
    assert leftovers_of(twin.run_id, pids) == []
    assert [s for s in runstate.stray_frr() if s["mark"] == str(twin.dir)] == []
    # and FRR's per-daemon crash-log folders went with it instead of piling up in /var/tmp/frr
    assert [f"{d}.{p}" for d, p in daemons if os.path.exists(f"/var/tmp/frr/{d}.{p}")] == []


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_next_spawn_reaps_the_twin_of_a_killed_owner_without_a_command(spawn_twin):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(LABS / "triangle")], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        run_id, *pids = child.stdout.readline().split()
        pids = [int(p) for p in pids]
        child.send_signal(signal.SIGKILL)  # the owner dies: no finally, no teardown
        child.wait(10)
        assert leftovers_of(run_id, pids)  # it really left its twin behind
        # when any AEGIS process spawns a twin (no twin_reap by hand)
        spawn_twin(load_lab(LABS / "triangle"))
        # then the orphan is gone
        assert leftovers_of(run_id, pids) == []
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_cli_preflight_killed_mid_run_tears_its_twin_down(tmp_path, sig):
    before = set(os.listdir(runstate.RUN_ROOT)) if runstate.RUN_ROOT.exists() else set()
    # PYTHONFAULTHANDLER: if it ever hangs, SIGABRT makes it print every thread's stack (below).
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONFAULTHANDLER="1")
    cli = subprocess.Popen([sys.executable, "manage.py", "preflight", str(LABS / "triangle"), "--change",
                            str(LABS / "triangle" / "changes" / "ship_ready.yml"), "--no-seal",
                            "--out", str(tmp_path / "out")],
                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def own_run():
            for name in set(os.listdir(runstate.RUN_ROOT)) - before if runstate.RUN_ROOT.exists() else []:
                state = runstate.state_read(runstate.RUN_ROOT / name) or {}
                if state.get("owner_pid") == cli.pid and state.get("daemons"):
                    return state
            return None

        # given the CLI's twin is up (its daemons are recorded)
        state = wait_for(own_run, 120, "the CLI's twin to spawn")
        pids = [p for p, _ in state["holders"].values()] + \
            [p for d in state["daemons"].values() for p, _ in d.values()]
        # when the operator's shell sends it a signal
        cli.send_signal(sig)
        try:
            _, err = cli.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            # Seen once in CI (1 in ~35 runs, not reproduced in 32 tries): the CLI printed that the
            # twin was torn down, then did not exit. Fail with where each of its threads stood.
            cli.send_signal(signal.SIGABRT)
            out, err = cli.communicate(timeout=30)
            pytest.fail(f"the CLI did not exit within 120 s of {sig.name}; its threads:\n{err[-8000:]}\n"
                        f"stdout: {out[-1500:]}")
        # then it says so, exits 130, and nothing of its twin is left; nothing was written
        assert cli.returncode == 130, err
        assert "twin was torn down" in err and "Traceback" not in err
        assert leftovers_of(state["run_id"], pids) == []
        assert not (tmp_path / "out" / "result.json").exists()
    finally:
        if cli.poll() is None:
            cli.kill()
