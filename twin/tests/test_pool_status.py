"""The warm pool's status file (twin/pool.py): what a process holds, readable by another process
(the admin page, `twin_pool status`), gone when the pool closes, and never shown as held once the
process that wrote it is gone. No FRR: the twin is a stand-in that only answers what the pool asks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from twin.base import Topology
from twin.pool import TwinPool, pool_status_prune, pool_status_read

BASELINE = {"nodes": {"r1": {"routes": {"10.0.0.0/24": 1}}, "r2": {"routes": {}}}}


class StandInTwin:
    """Answers the pool's questions (snapshot, running configs) and records its teardown."""

    def __init__(self) -> None:
        self.run_id = "standin1"
        self.topology = SimpleNamespace(name="triangle", routers=lambda: ["r1", "r2"])
        self.state: dict = {}
        self.torn_down = False

    def snapshot(self) -> dict:
        return json.loads(json.dumps(BASELINE))

    def running_config(self, node: str) -> str:
        return f"hostname {node}\n"

    def teardown(self) -> None:
        self.torn_down = True


def test_the_status_file_lists_each_twin_and_goes_with_the_pool(tmp_path):
    # given a pool with a status folder, when it adopts a twin after a proven rollback
    pool = TwinPool(budget_mb=100, status_dir=tmp_path, holder="twin_pool")
    twin = StandInTwin()
    assert pool.adopt(_topo(), twin, BASELINE, twin.snapshot())
    # then another process reading the folder sees the lab, its routers and the baseline digest
    [status] = pool_status_read(tmp_path)
    assert not status["stale"] and status["holder"] == "twin_pool"
    [held] = status["twins"]
    assert (held["lab"], held["routers"], held["leased"]) == ("triangle", 2, False)
    assert held["baseline_digest"].startswith("sha256:") and held["last_used"].endswith("Z")
    # and a run leasing it shows as in use
    lease = pool.acquire(_topo())
    assert lease is not None
    assert pool_status_read(tmp_path)[0]["twins"][0]["leased"] is True
    # when the pool closes, the twin is torn down and the file is gone
    pool.close()
    assert twin.torn_down and pool_status_read(tmp_path) == []


def test_a_file_left_by_a_dead_process_holds_nothing(tmp_path):
    # given a status file written by a process that then died without closing its pool
    child = subprocess.run([sys.executable, "-c", "import os, json, sys; from twin import runstate; "
                            "print(json.dumps({'pid': os.getpid(), 'pid_start': runstate.proc_start_time(os.getpid())}))"],
                           capture_output=True, text=True, check=True, cwd=str(_repo()))
    who = json.loads(child.stdout)
    (tmp_path / f"{who['pid']}.json").write_text(json.dumps({
        **who, "holder": "celery", "started": "x", "written": "x", "budget_mb": 100, "memory_mb": 60,
        "closed": False, "twins": [{"lab": "triangle", "memory_mb": 60}]}))
    # then it is listed as gone, with no twins counted as held
    [status] = pool_status_read(tmp_path)
    assert status["stale"] and status["twins"] == []
    # and the next holder or worker to start removes the file; a live pool's file stays
    live = TwinPool(budget_mb=100, status_dir=tmp_path)
    try:
        assert pool_status_prune(tmp_path) == [f"{who['pid']}.json"]
        assert [st["pid"] for st in pool_status_read(tmp_path)] == [live.status()["pid"]]
    finally:
        live.close()


def _topo() -> Topology:
    return Topology(name="triangle", nodes={}, links=[], source=Path("triangle.clab.yml"))


def _repo() -> Path:
    return Path(__file__).resolve().parents[2]


def test_lab_check_prints_what_the_workers_hold():
    from twin.labcheck import lab_check_text

    # given a lab_check report on a host where a worker holds this lab's twin and one of another lab
    report = {"lab": "triangle", "source": "labs/triangle", "nodes": 3, "hosts": 0, "bridges": 0, "links": 3,
              "converged": True, "convergence_s": 4.2, "bgp_sessions": {"established": 6, "total": 6},
              "ospf_adjacencies": {"full": 0, "total": 0}, "bfd_peers": {"up": 0, "total": 0}, "routes": {},
              "reachability": {"ok": 6, "total": 6, "sampled": False, "failed": []}, "rejected_lines": [],
              "warnings": [], "teardown_s": 0.1, "total_s": 5.0,
              "warm_twins": [{"twin_id": "a399ec91", "owner_pid": 4375, "routers": 3, "memory_mb": 67.6, "leased": False,
                              "uses": 2, "last_used": "2026-12-05T19:31:25Z", "baseline_digest": "sha256:12917e26e7c9"}],
              "warm_twins_host": {"twins": 2, "memory_mb": 290.1, "labs": ["fabric10", "triangle"]}}
    # then the summary names the twin, its size, when it was last used, and the host's total
    text = lab_check_text(report)
    assert "warm twins of this lab held by workers on this host: 1" in text
    assert "twin a399ec91 (worker pid 4375, 3 routers, 67.6 MB, idle, 2 run(s), last used 2026-12-05T19:31:25Z" in text
    assert "warm twins on this host, all labs: 2 (290.1 MB: fabric10, triangle)" in text
