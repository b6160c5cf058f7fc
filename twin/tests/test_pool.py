"""Warm twins (twin/pool.py) on real triangles: reuse only at the proven baseline, a dirty
rollback or a changed lab discards, a leased twin is never handed out twice, and nothing is
left after the pool closes - also when its process exits, or is killed and the reaper runs.

Few and real: each test brings up one triangle (about 6 s to settle)."""

from __future__ import annotations

import copy
import subprocess
import sys
import time

import pytest

from twin.pool import TwinPool, topology_digest
from twin.reap import twin_reap
from twin.topology import load_lab

from .conftest import LABS, REPO, leftovers_of, recorded_pids, requires_netns

pytestmark = [requires_netns, pytest.mark.twin]


@pytest.fixture
def pool():
    p = TwinPool(budget_mb=4096)
    yield p
    p.close()


def _settled_triangle(pool: TwinPool):
    """A converged triangle adopted by the pool, with what a test needs to check leftovers."""
    from twin.netns import NetnsBackend

    topology = load_lab(LABS / "triangle")
    twin = NetnsBackend().spawn(topology)
    pids = recorded_pids(twin)
    try:
        assert twin.converge(60, 1.0).converged
        s0 = twin.snapshot()
        assert pool.adopt(topology, twin, s0, twin.snapshot())
    except BaseException:
        twin.teardown()
        raise
    return topology, twin, pids


def test_reuse_only_at_the_baseline_and_a_leased_twin_is_not_shared(pool):
    topology, twin, pids = _settled_triangle(pool)
    [held] = pool.holdings()
    assert held["lab"] == "triangle" and held["memory_mb"] > 5 and not held["leased"]

    # Given a warm twin, when two runs ask at once, then only one gets it (the other spawns).
    lease = pool.acquire(topology)
    assert lease is not None and lease.twin is twin
    assert lease.snapshot == lease.entry.baseline
    assert pool.acquire(topology) is None
    assert pool.holdings()[0]["leased"]

    # A clean run gives it back: same state, same configs -> kept and handed out again.
    assert pool.release(lease, twin.snapshot(), rollback_verified=True)
    again = pool.acquire(topology)
    assert again is not None and again.twin is twin and again.entry.uses == 3  # adopted run + 2 leases

    # A run whose rollback was not proven never returns its twin.
    assert not pool.release(again, twin.snapshot(), rollback_verified=False)
    assert pool.holdings() == []
    assert leftovers_of(twin.run_id, pids) == []


def test_dirty_rollback_discards(pool):
    topology, twin, pids = _settled_triangle(pool)
    lease = pool.acquire(topology)
    assert lease is not None
    # A config line that changes no route or session: the snapshot is equal, the config is not.
    twin.apply("r2", "ip prefix-list LEFT-BEHIND seq 5 permit 10.0.0.0/8\n")
    assert twin.snapshot() == lease.entry.baseline
    assert not pool.release(lease, twin.snapshot(), rollback_verified=True)
    assert pool.holdings() == [] and leftovers_of(twin.run_id, pids) == []

    # A state left different from the baseline is discarded too.
    topology, twin, pids = _settled_triangle(pool)
    lease = pool.acquire(topology)
    twin.apply("r3", "ip route 10.77.0.0/24 Null0\n")
    assert not pool.release(lease, twin.snapshot(), rollback_verified=True)
    assert leftovers_of(twin.run_id, pids) == []


def test_changed_lab_files_or_state_discard(pool):
    topology, twin, pids = _settled_triangle(pool)
    edited = copy.deepcopy(topology)
    edited.nodes["r3"].frr_conf += "ip route 10.88.0.0/24 Null0\n"
    assert topology_digest(edited) != topology_digest(topology)
    # The lab's files changed: the warm twin is not what a fresh one would be; torn down.
    assert pool.acquire(edited) is None
    assert pool.holdings() == [] and leftovers_of(twin.run_id, pids) == []

    # A warm twin whose state moved while idle (here: by hand) is not handed out.
    topology, twin, pids = _settled_triangle(pool)
    twin.apply("r1", "ip route 10.66.0.0/24 Null0\n")
    time.sleep(0.5)
    assert pool.acquire(topology) is None
    assert leftovers_of(twin.run_id, pids) == []


POOL_SCRIPT = """
import sys, time
sys.path.insert(0, {repo!r})
from twin.netns import NetnsBackend
from twin.pool import twin_pool_get
from twin.topology import load_lab
topology = load_lab({lab!r})
pool = twin_pool_get(4096)
twin = NetnsBackend().spawn(topology)
s = twin.snapshot(reachability=False)
assert pool.adopt(topology, twin, s, s)
print(twin.run_id, flush=True)
if {mode!r} == "hang":
    time.sleep(600)
"""


@pytest.mark.parametrize("mode", ["exit", "killed"])
def test_pool_twins_go_when_the_process_goes(mode):
    # Given a worker process whose pool holds a twin, when it exits (atexit) or is killed
    # (SIGKILL: nothing of it runs), then its twin is gone - by itself, or by the reaper.
    script = POOL_SCRIPT.format(repo=str(REPO), lab=str(LABS / "triangle"), mode="exit" if mode == "exit" else "hang")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert len(run_id) == 8, run_id
        if mode == "killed":
            proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if mode == "killed":
        assert leftovers_of(run_id, []) != []  # the killed owner could not clean up ...
        assert run_id in twin_reap()  # ... the reaper does
    assert leftovers_of(run_id, []) == []
