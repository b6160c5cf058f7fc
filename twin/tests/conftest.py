"""Fixtures for the twin tests.

Real-twin tests need root and FRR; they are marked `twin` and skip (with the reason) where the
host cannot run them. Every twin a test spawns goes through `spawn_twin`, whose finalizer tears
it down and then asserts that nothing of *that* run is left - namespaces with its prefix,
processes it recorded, its run folder - whether the test passed or failed. Other engineers run
twins on this machine at the same time, so the checks look only at this run's prefix.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from twin import runstate
from twin.base import Topology, TwinError
from twin.topology import load_lab

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "labs"
CORPUS = REPO.parent / "shared" / "corpus"


def netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not Path("/usr/lib/frr/zebra").exists() or shutil.which("vtysh") is None:
        return "needs FRR (apt-get install frr)"
    return None


requires_netns = pytest.mark.skipif(netns_unavailable() is not None, reason=netns_unavailable() or "")


def leftovers_of(run_id: str, recorded_pids: list[int]) -> list[str]:
    """Everything of run `run_id` that still exists on this host."""
    prefix = f"aegis-{run_id}-"
    left = [f"namespace {ns}" for ns in os.listdir(runstate.NETNS_DIR) if ns.startswith(prefix)] \
        if runstate.NETNS_DIR.exists() else []
    left += [f"pid {p}" for p in recorded_pids if runstate.proc_start_time(p) is not None
             and not runstate.is_zombie(p)]
    if runstate.run_dir(run_id).exists():
        left.append(f"directory {runstate.run_dir(run_id)}")
    return left


def recorded_pids(twin) -> list[int]:
    pids = [pid for pid, _ in twin.state.get("holders", {}).values()]
    pids += [pid for d in twin.state.get("daemons", {}).values() for pid, _ in d.values()]
    return pids


@pytest.fixture
def spawn_twin() -> Iterator[Callable[[Topology], object]]:
    """spawn_twin(topology) -> a running NetnsTwin, torn down (and checked) after the test."""
    from twin.netns import NetnsBackend

    twins = []

    def spawn(topology: Topology):
        twin = NetnsBackend().spawn(topology)
        twins.append(twin)
        return twin

    yield spawn
    problems = []
    for twin in twins:
        pids = recorded_pids(twin)
        try:
            twin.teardown()
        except TwinError as exc:
            problems.append(str(exc))
        problems += leftovers_of(twin.run_id, pids)
    assert not problems, f"twin leftovers after the test: {problems}"


@pytest.fixture(scope="module")
def triangle_twin() -> Iterator[object]:
    """One converged triangle for a module's read-mostly tests; torn down and checked at the end."""
    from twin.netns import NetnsBackend

    twin = NetnsBackend().spawn(load_lab(LABS / "triangle"))
    pids = recorded_pids(twin)
    try:
        result = twin.converge(60)
        assert result.converged, result.still_moving
        yield twin
    finally:
        twin.teardown()
        left = leftovers_of(twin.run_id, pids)
        assert not left, f"twin leftovers: {left}"
