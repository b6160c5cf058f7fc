"""A routing daemon that dies mid-run blocks the verdict, saying which one (real twin).

Without the check, bgpd killed on r1 after the change was applied only shows as sessions and
prefixes gone on r1's neighbours, which reads as the change's doing (or, once the rollback
snapshot also lacks them, as an unrestored rollback) - never as "the router broke".
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from twin import runstate
from twin.topology import load_lab

from .conftest import real_twin_possible, twin_leftovers

pytestmark = [pytest.mark.twin, pytest.mark.skipif(real_twin_possible() is not None,
                                                   reason=str(real_twin_possible()))]

LAB = Path(__file__).resolve().parents[3] / "labs" / "triangle"


class KillAfterApply:
    """A progress sink that SIGKILLs one daemon of the twin the moment `apply` reports ok."""

    def __init__(self, node: str, daemon: str):
        self.node, self.daemon = node, daemon
        self.twin_id: str | None = None
        self.killed: int | None = None

    def __call__(self, step, status, message, data):
        if isinstance(data.get("twin_id"), str):
            self.twin_id = data["twin_id"]  # the spawn's first event names the twin
        if step == "apply" and status == "ok" and self.killed is None:
            state = runstate.state_read(runstate.run_dir(self.twin_id))
            pid, start = state["daemons"][self.node][self.daemon]
            assert runstate.pid_matches(pid, start)
            os.kill(pid, signal.SIGKILL)  # our own twin's daemon, by its recorded pid
            self.killed = pid


def test_bgpd_killed_after_apply_blocks_with_the_reason():
    topology = load_lab(LAB)
    change = change_load((LAB / "changes" / "ship_ready.yml").read_text(), topology)
    sink = KillAfterApply("r1", "bgpd")
    result = None
    try:
        # when bgpd of r1 dies right after the change was applied
        result = run_preflight(LAB, change, backend="netns", progress=sink, failures="none")
        # then the run is blocked, and a reason names the daemon and the router
        assert sink.killed is not None
        assert result["verdict"] == "blocked"
        exited = [r for r in result["reasons"] if r["code"] == "DAEMON_EXITED"]
        assert exited and "bgpd on r1" in exited[0]["message"], result["reasons"]
        # and it did not wait out the converge timeout nor take snapshots of the broken router
        assert any("bgpd on r1 exited" in r["message"] for r in result["reasons"] if r["code"] == "CHANGE_NOT_CONVERGED")
        assert {s["name"]: s["status"] for s in result["steps"]}["snapshot_change"] == "skipped"
    finally:
        if sink.twin_id:
            assert twin_leftovers(f"aegis-{sink.twin_id}-") == []
