"""Rollback outcomes told apart: restores / restores only after N s / rollback lines fail.

On the seeded simulator, with its twin wrapped to behave like the FRR cases we cannot provoke
on demand (stand-ins, named as such): a line frr-reload has no inverse for, and a session
that comes back only after a retry timer. The real-twin cases are in tests/scenarios/.
"""

from __future__ import annotations

import copy

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from twin.base import ReloadResult
from twin.simulator import SimulatorBackend

from .examples import LABS

TRIANGLE = LABS / "triangle"


class WrappedBackend:
    name = "simulator"
    tier = "simulated"

    def __init__(self, wrap):
        self.inner = SimulatorBackend(seed=1)
        self.wrap = wrap

    def spawn(self, topology, run_id=None, progress=None):
        return self.wrap(self.inner.spawn(topology, run_id))


class Wrapper:
    def __init__(self, twin):
        self._twin = twin

    def __getattr__(self, name):
        return getattr(self._twin, name)


class NoInverse(Wrapper):
    """Stand-in for a line FRR cannot take back: frr-reload fails and the config stays changed."""

    def reload_config(self, node, config, test_only=False):
        return ReloadResult(node, [], ["no frobnicate"], applied=False, output="% Unknown command: no frobnicate")


class LateSession(Wrapper):
    """Stand-in for a session that returns only after its connect-retry timer: the first
    snapshot after the rollback still misses a route, the next one is the baseline again."""

    def __init__(self, twin):
        super().__init__(twin)
        self.rolled_back = False
        self.late = 1

    def reload_config(self, node, config, test_only=False):
        self.rolled_back = True
        return self._twin.reload_config(node, config, test_only)

    def snapshot(self, reachability=True):
        snap = self._twin.snapshot(reachability)
        if self.rolled_back and self.late:
            self.late -= 1
            snap = copy.deepcopy(snap)
            snap["nodes"]["r1"]["routes"].pop("192.0.2.0/24", None)
        return snap


def run(triangle, wrap):
    change = change_load((TRIANGLE / "changes" / "ship_ready.yml").read_text(), triangle)
    return run_preflight(TRIANGLE, change, backend=WrappedBackend(wrap))


def test_rollback_restores(triangle):
    result = run(triangle, Wrapper)
    rb = result["rollback"]
    assert (rb["status"], rb["verified"], rb["looks"]) == ("restored", True, 0)
    assert rb["restored_after_s"] is not None and result["verdict"] == "ship_ready"


def test_rollback_restores_only_after_a_retry(triangle):
    result = run(triangle, LateSession)
    rb = result["rollback"]
    assert (rb["status"], rb["verified"], rb["looks"]) == ("restored_after_retry", True, 1)
    slow = [r for r in result["reasons"] if r["code"] == "ROLLBACK_SLOW"]
    assert slow and f"{rb['restored_after_s']:g} s" in slow[0]["message"]
    assert result["verdict"] == "ship_ready"  # slow is not broken: a reason, not a block


def test_rollback_lines_fail_blocks(triangle):
    result = run(triangle, NoInverse)
    rb = result["rollback"]
    assert rb["status"] == "lines_fail" and not rb["verified"]
    assert "frobnicate" in rb["lines_failed"]["r3"]["frr_reload"]
    assert "ip route 198.51.100.0/24 Null0" in rb["lines_failed"]["r3"]["still_there"]
    assert result["verdict"] == "blocked"
    assert "ROLLBACK_LINES_FAILED" in [r["code"] for r in result["reasons"]]
