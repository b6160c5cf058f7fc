"""Invariants from aegis.yml: loading errors name the file and entry; evaluation per kind."""

from __future__ import annotations

import threading

import pytest

from preflight.core.invariants import invariants_evaluate, invariants_load
from twin.base import TopologyError

SNAP = {
    "nodes": {"r1": {"routes": {"192.0.2.0/24": {}}, "bgp": {"10.0.12.1": {"state": "Established"},
                                                             "10.0.13.1": {"state": "Active"}}}},
    "reachability": {"pairs": {"r1->r2:10.255.0.2": True, "r1->r3:10.255.0.3": False}},
}


@pytest.mark.parametrize("kind, spec, ok", [
    ("must_reach", {"from": "r1", "to": "10.255.0.2"}, True),
    ("must_reach", {"from": "r1", "to": "10.255.0.3"}, False),
    ("must_not_reach", {"from": "r1", "to": "10.255.0.3"}, True),
    ("must_not_reach", {"from": "r1", "to": "10.255.0.2"}, False),
    ("session_established", {"node": "r1", "peer": "10.0.12.1"}, True),
    ("session_established", {"node": "r1", "peer": "10.0.13.1"}, False),
    ("session_established", {"node": "r1", "peer": "10.9.9.9"}, False),
    ("prefix_present", {"node": "r1", "prefix": "192.0.2.0/24"}, True),
    ("prefix_present", {"node": "r1", "prefix": "198.51.100.0/24"}, False),
    ("prefix_absent", {"node": "r1", "prefix": "198.51.100.0/24"}, True),
    ("prefix_absent", {"node": "r1", "prefix": "192.0.2.0/24"}, False),
])
def test_each_kind_evaluates_on_the_snapshot(kind, spec, ok):
    [res] = invariants_evaluate([{"kind": kind, "spec": spec}], SNAP)
    assert res["ok"] is ok
    assert res["detail"]


def test_reachability_not_in_the_matrix_is_measured_with_the_twin():
    asked = []

    def reach(src, addr):
        asked.append((src, addr))
        return True

    [res] = invariants_evaluate([{"kind": "must_reach", "spec": {"from": "r1", "to": "203.0.113.1"}}], SNAP, reach)
    assert res["ok"] is True and asked == [("r1", "203.0.113.1")]


def test_unmeasurable_reachability_fails_closed():
    [res] = invariants_evaluate([{"kind": "must_reach", "spec": {"from": "r1", "to": "203.0.113.1"}}], SNAP)
    assert res["ok"] is False and "could not be measured" in res["detail"]


def test_lab_without_aegis_yml_has_no_invariants(tmp_path, pair):
    assert invariants_load(tmp_path, pair) == []


@pytest.mark.parametrize("text, fragment", [
    ("invariants: [", "not valid YAML"),
    ("invariants: {a: 1}", "a list `invariants:`"),
    ("invariants:\n  - must_fly: {from: r1, to: 10.0.0.1}\n", "unknown kind 'must_fly'"),
    ("invariants:\n  - must_reach: {from: r1}\n", "needs exactly the keys from, to"),
    ("invariants:\n  - must_reach: {from: r9, to: 10.0.0.1}\n", "node 'r9' is not in lab"),
    ("invariants:\n  - prefix_present: {node: r1, prefix: 10.0.0.1/8}\n", "has host bits set"),
    ("invariants:\n  - must_reach: {from: r1, to: not-an-ip}\n", "does not appear to be"),
])
def test_bad_aegis_yml_names_file_and_entry(tmp_path, pair, text, fragment):
    (tmp_path / "aegis.yml").write_text(text)
    with pytest.raises(TopologyError) as err:
        invariants_load(tmp_path, pair)
    assert "aegis.yml" in str(err.value) and fragment in str(err.value)


def test_bundled_triangle_invariants_load(triangle):
    from preflight.core.invariants import KINDS

    from .conftest import LABS

    invs = invariants_load(LABS / "triangle", triangle)
    assert len(invs) >= 5 and {i["kind"] for i in invs} <= set(KINDS)


def test_live_pings_of_several_invariants_run_at_once():
    # given three reachability invariants whose pairs the snapshot did not sample, and a ping
    # that only returns once another ping is in flight (a barrier: sequential pings would break it)
    barrier = threading.Barrier(3, timeout=10)
    asked = []

    def reach(src: str, dst: str) -> bool:
        asked.append((src, dst))
        barrier.wait()
        return dst != "203.0.113.1"

    invariants = [{"kind": "must_reach", "spec": {"from": "r1", "to": "10.255.0.2"}},
                  {"kind": "must_reach", "spec": {"from": "r3", "to": "10.255.0.1"}},
                  {"kind": "must_not_reach", "spec": {"from": "r1", "to": "203.0.113.1"}}]
    # when they are evaluated, then each pair is pinged once, concurrently, and judged as before
    results = invariants_evaluate(invariants, {"nodes": {}}, reach)
    assert [r["ok"] for r in results] == [True, True, True]
    assert sorted(asked) == sorted({(i["spec"]["from"], i["spec"]["to"]) for i in invariants})
    assert results[2]["detail"] == "r1 does not reach 203.0.113.1"
