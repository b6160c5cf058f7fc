"""The memory a twin costs and the host ledger that admits runs within a budget (fast, no root)."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from twin.capacity import (
    BGP_PEER_MB,
    NODE_COST_MB,
    TWIN_BASE_MB,
    CapacityLedger,
    bgp_neighbors,
    node_cost_mb,
    twin_cost_mb,
)
from twin.fabricgen import fabric_write
from twin.topology import load_lab

LABS = Path(__file__).resolve().parents[2] / "labs"


def test_cost_is_the_measured_per_node_figure_plus_extra_daemons():
    triangle = load_lab(LABS / "triangle")  # 3 routers: zebra, staticd, bgpd
    assert twin_cost_mb(triangle) == TWIN_BASE_MB + 3 * NODE_COST_MB
    campus = load_lab(LABS / "campus")  # OSPF adds ospfd to every router
    assert twin_cost_mb(campus) > TWIN_BASE_MB + len(campus.routers()) * NODE_COST_MB


def test_a_router_with_many_bgp_sessions_is_charged_for_them(tmp_path):
    # given a 50-router fabric: each of its 2 spines peers with 48 leaves, each leaf with the 2 spines
    fabric_write(tmp_path / "fab", 2, 48, name="fab50")
    fab = load_lab(tmp_path / "fab")
    assert bgp_neighbors(fab.nodes["spine1"].frr_conf) == 48 and bgp_neighbors(fab.nodes["leaf1"].frr_conf) == 2
    # then a leaf costs the flat per-node figure, a spine that plus each session past 4 (measured 56.4 MB PSS)
    assert node_cost_mb(fab.nodes["leaf1"]) == NODE_COST_MB
    assert node_cost_mb(fab.nodes["spine1"]) == NODE_COST_MB + round(44 * BGP_PEER_MB) == 60
    assert twin_cost_mb(fab) == TWIN_BASE_MB + 48 * NODE_COST_MB + 2 * 60
    # peer-group names are not peers; members, interface peers and repeated lines count once
    conf = ("router bgp 65001\n neighbor FABRIC peer-group\n neighbor FABRIC remote-as external\n"
            " neighbor 10.0.0.1 peer-group FABRIC\n neighbor 10.0.0.3 peer-group FABRIC\n"
            " neighbor eth3 interface remote-as external\n address-family ipv4 unicast\n"
            "  neighbor FABRIC activate\n  neighbor 10.0.0.1 route-map IN in\n")
    assert bgp_neighbors(conf) == 3


def test_the_ledger_admits_within_the_budget_and_refuses_past_it(tmp_path):
    ledger = CapacityLedger(tmp_path / "capacity.json", budget_mb=200)
    assert ledger.admit("run-a", 120) == (True, 200)
    assert ledger.admit("run-b", 100) == (False, 80)  # would need 100, 80 left
    assert ledger.admit("run-c", 80) == (True, 80)
    ledger.release("run-a")
    assert ledger.admit("run-b", 100) == (True, 120)
    assert ledger.reserved() == {"run-b": 100, "run-c": 80}


def test_a_dead_workers_reservation_no_longer_counts(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / "capacity.json"
    path.write_text(json.dumps({"run-x": {"mb": 500, "pid": dead.pid, "start": 1}}))
    assert CapacityLedger(path, budget_mb=500).admit("run-y", 400) == (True, 500)


def test_concurrent_admissions_never_overcommit(tmp_path):
    ledger = CapacityLedger(tmp_path / "capacity.json", budget_mb=1000)
    results: list[bool] = []

    def take(i: int) -> None:
        results.append(ledger.admit(f"run-{i}", 300)[0])

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 3 and sum(ledger.reserved().values()) == 900
