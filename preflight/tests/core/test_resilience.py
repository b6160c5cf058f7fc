"""Failure scenarios: which run, how they are compared, and the verdict they lead to (on the
simulator, which takes links down too; the real-twin cases are labs/fabric/changes/single_homed*)."""

from __future__ import annotations

import pytest

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from preflight.core.resilience import failures_load, resilience_compare, scenarios_select
from twin.base import TopologyError
from twin.simulator import SimulatorBackend
from twin.topology import load_lab

from .examples import LABS

FABRIC = LABS / "fabric"


@pytest.fixture(scope="module")
def fabric():
    return load_lab(FABRIC)


def test_the_lab_declares_a_spine_failure_and_the_change_adds_its_devices_links(fabric):
    declared = failures_load(FABRIC, fabric)
    assert [s["name"] for s in declared] == ["node_down spine2"]
    picked = scenarios_select(fabric, ["leaf3"], declared)
    assert [s["name"] for s in picked] == ["node_down spine2", "link_down leaf3:eth1", "link_down leaf3:eth2"]
    assert [s["name"] for s in scenarios_select(fabric, ["leaf3"], declared, 2)] == picked_names(picked)[:2]
    assert scenarios_select(fabric, ["leaf3"], declared, "none") == []
    assert scenarios_select(fabric, ["leaf3"], declared, max_scenarios=0) == []
    assert len(scenarios_select(fabric, ["leaf3"], declared, "all")) == 1 + len(fabric.links)


def picked_names(picked):
    return [s["name"] for s in picked]


@pytest.mark.parametrize("text, message", [
    ("failures:\n  - link_down: {node: leaf3, interface: eth9}\n", "not a link end"),
    ("failures:\n  - node_down: nosuch\n", "not a router"),
    ("failures:\n  - cable_cut: leaf3\n", "unknown failure"),
    ("failures: leaf3\n", "must be a list"),
])
def test_bad_failures_say_what_to_fix(tmp_path, fabric, text, message):
    (tmp_path / "aegis.yml").write_text(text)
    with pytest.raises(TopologyError, match=message):
        failures_load(tmp_path, fabric)


def test_what_the_change_loses_anyway_is_not_counted_as_redundancy():
    s0 = {"reach a->b:1", "session a x", "route a 10.0.0.0/24"}
    s1 = {"reach a->b:1", "route a 10.0.0.0/24"}  # the change itself drops the session
    before = {"reach a->b:1", "session a x"}
    after = set()
    row = resilience_compare({"name": "link_down a:eth1", "kind": "link_down"}, before, after, s0, s1)
    assert row["lost"] == ["a -> b (1)"]
    assert row["before"]["reachable_pairs"] == 1 and row["after"]["reachable_pairs"] == 0


@pytest.mark.parametrize("name, verdict, code", [
    ("single_homed", "blocked", "REDUNDANCY_LOST"),
    ("single_homed_declared", "needs_approval", None),
])
def test_single_homed_leaf_on_the_simulator(fabric, name, verdict, code):
    change = change_load((FABRIC / "changes" / f"{name}.yml").read_text(), fabric)
    result = run_preflight(FABRIC, change, backend=SimulatorBackend(seed=1), failures=1)
    codes = [r["code"] for r in result["reasons"]]
    rows = result["resilience"]["scenarios"]
    assert [r["name"] for r in rows] == ["node_down spine2"]
    assert any("leaf3" in item for item in rows[0]["lost"]), rows[0]
    assert result["verdict"] == verdict, result["reasons"]
    if code:
        assert code in codes and "under node_down spine2" in next(r["message"] for r in result["reasons"]
                                                                  if r["code"] == code)
    else:
        assert "REDUNDANCY_LOST" not in codes and rows[0]["declared"]
        factor = next(f for f in result["risk"]["factors"] if f["name"] == "redundancy_removed")
        assert factor["points"] == 3


def test_failures_none_runs_no_scenario_and_a_bad_value_is_an_input_error(fabric):
    change = change_load((FABRIC / "changes" / "single_homed.yml").read_text(), fabric)
    result = run_preflight(FABRIC, change, backend=SimulatorBackend(seed=1), failures="none")
    assert result["resilience"]["scenarios"] == []
    with pytest.raises(ValueError, match="failures must be"):
        run_preflight(FABRIC, change, backend=SimulatorBackend(seed=1), failures="some")
