"""Diff of two snapshots and its classification against `expect`."""

from __future__ import annotations

import copy

import pytest

from preflight.core.diff import diff_classify, diff_is_empty, snapshot_diff

S0 = {
    "nodes": {
        "r1": {
            "routes": {
                "10.255.0.2/32": {"protocol": "bgp", "distance": 20, "metric": 0, "nexthops": ["10.0.12.1@eth1"]},
                "192.0.2.0/24": {"protocol": "bgp", "distance": 20, "metric": 0, "nexthops": ["10.0.13.1@eth2"]},
            },
            "bgp": {"10.0.12.1": {"state": "Established", "remote_as": 65002, "local_as": 65001,
                                  "pfx_rcd": 1, "pfx_snt": 1}},
            "ospf": {"10.255.0.2@eth1": {"state": "Full"}},
            "bfd": {"10.0.12.1|eth1": {"status": "up"}},
        },
        "r2": {"routes": {}, "bgp": {"10.0.12.0": {"state": "Established"}}},
    },
    "reachability": {"pairs": {"r1->r2:10.255.0.2": True, "r1->r3:10.255.0.3": True}},
}
EMPTY_EXPECT = {"prefixes_added": {}, "prefixes_removed": {}, "prefixes_changed": {}, "sessions_removed": [],
                "sessions_added": []}


def s1_with(**edits):
    s1 = copy.deepcopy(S0)
    for path, value in edits.items():
        node, section, key = path.split("__")
        if value is None:
            s1["nodes"][node][section].pop(key.replace("_", "."), None)
        else:
            s1["nodes"][node][section][key.replace("_", ".")] = value
    return s1


def test_unchanged_snapshots_give_an_empty_diff():
    d = snapshot_diff(S0, copy.deepcopy(S0))
    assert diff_is_empty(d)
    assert diff_classify(d, EMPTY_EXPECT) == {"intended": [], "undeclared": [], "expected_missing": []}


def test_route_added_removed_changed_per_node():
    s1 = copy.deepcopy(S0)
    r1 = s1["nodes"]["r1"]["routes"]
    r1["10.42.0.0/24"] = {"protocol": "bgp", "distance": 20, "metric": 0, "nexthops": ["10.0.12.1@eth1"]}
    del r1["192.0.2.0/24"]
    r1["10.255.0.2/32"] = {"protocol": "bgp", "distance": 20, "metric": 0, "nexthops": ["10.0.13.1@eth2"]}
    d = snapshot_diff(S0, s1)["nodes"]["r1"]
    assert [r["prefix"] for r in d["routes_added"]] == ["10.42.0.0/24"]
    assert [r["prefix"] for r in d["routes_removed"]] == ["192.0.2.0/24"]
    assert d["routes_changed"] == [{"prefix": "10.255.0.2/32",
                                    "before": {"protocol": "bgp", "distance": 20, "metric": 0,
                                               "nexthops": ["10.0.12.1@eth1"]},
                                    "after": {"protocol": "bgp", "distance": 20, "metric": 0,
                                              "nexthops": ["10.0.13.1@eth2"]}}]


def test_sessions_adjacencies_and_bfd_lost():
    s1 = copy.deepcopy(S0)
    s1["nodes"]["r1"]["bgp"]["10.0.12.1"]["state"] = "Active"
    s1["nodes"]["r1"]["ospf"] = {}
    s1["nodes"]["r1"]["bfd"]["10.0.12.1|eth1"]["status"] = "down"
    d = snapshot_diff(S0, s1)["nodes"]["r1"]
    assert d["sessions_lost"] == [{"peer": "10.0.12.1", "before": "Established", "after": "Active"}]
    assert [a["peer"] for a in d["adjacencies_lost"]] == ["ospf:10.255.0.2@eth1", "bfd:10.0.12.1|eth1"]


def test_reachability_pairs_lost_and_gained():
    s1 = copy.deepcopy(S0)
    s1["reachability"]["pairs"]["r1->r2:10.255.0.2"] = False
    d = snapshot_diff(S0, s1)
    assert d["reachability_lost"] == ["r1->r2:10.255.0.2"]
    assert snapshot_diff(s1, S0)["reachability_gained"] == ["r1->r2:10.255.0.2"]


def _lost_everything():
    s1 = copy.deepcopy(S0)
    del s1["nodes"]["r1"]["routes"]["192.0.2.0/24"]
    s1["nodes"]["r1"]["bgp"]["10.0.12.1"]["state"] = "Idle"
    s1["nodes"]["r1"]["routes"]["10.42.0.0/24"] = {"protocol": "static", "distance": 1, "metric": 0,
                                                   "nexthops": ["Null0"]}
    s1["reachability"]["pairs"]["r1->r3:10.255.0.3"] = False
    return snapshot_diff(S0, s1)


@pytest.mark.parametrize("expect, undeclared_kinds, intended_kinds", [
    (EMPTY_EXPECT, ["route_added", "route_removed", "session_lost", "reachability_lost"], []),
    ({**EMPTY_EXPECT, "prefixes_added": {"r1": ["10.42.0.0/24"]}},
     ["route_removed", "session_lost", "reachability_lost"], ["route_added"]),
    ({**EMPTY_EXPECT, "prefixes_added": {"*": ["10.42.0.0/24"]}, "prefixes_removed": {"r1": ["192.0.2.0/24"]}},
     ["session_lost", "reachability_lost"], ["route_added", "route_removed"]),
    ({**EMPTY_EXPECT, "sessions_removed": [{"node": "r1", "peer": "10.0.12.1"}],
      "prefixes_removed": {"r1": ["10.255.0.0/24", "192.0.2.0/24"]}},
     ["route_added"], ["route_removed", "session_lost", "reachability_lost"]),
    # a declaration for another node does not cover r1
    ({**EMPTY_EXPECT, "prefixes_removed": {"r2": ["192.0.2.0/24"]}},
     ["route_added", "route_removed", "session_lost", "reachability_lost"], []),
])
def test_classification_against_expect(expect, undeclared_kinds, intended_kinds):
    c = diff_classify(_lost_everything(), expect)
    assert sorted(i["kind"] for i in c["undeclared"]) == sorted(undeclared_kinds)
    assert sorted(i["kind"] for i in c["intended"]) == sorted(intended_kinds)
    assert all(i["loss"] == (i["kind"] in ("route_removed", "session_lost", "reachability_lost"))
               for i in c["undeclared"] + c["intended"])


def test_declared_effect_that_did_not_happen_is_reported_missing():
    c = diff_classify(snapshot_diff(S0, copy.deepcopy(S0)),
                      {**EMPTY_EXPECT, "prefixes_added": {"r2": ["10.42.0.0/24"], "*": ["10.43.0.0/24"]}})
    assert c["expected_missing"] == ["r2: prefix added 10.42.0.0/24 was declared but not seen"]


def test_ospf_adjacency_declared_by_bare_neighbor_id():
    s1 = copy.deepcopy(S0)
    s1["nodes"]["r1"]["ospf"] = {}
    c = diff_classify(snapshot_diff(S0, s1),
                      {**EMPTY_EXPECT, "sessions_removed": [{"node": "r1", "peer": "10.255.0.2@eth1"}]})
    assert c["undeclared"] == [] and [i["kind"] for i in c["intended"]] == ["adjacency_lost"]


@pytest.mark.parametrize("after_hops, kind, blocking", [
    (["blackhole"], "route_blackholed", True),       # the netns twin's name for Null0 / reject
    (["Null0"], "route_blackholed", True),           # the simulator's
    (["10.0.12.1@eth1"], "route_changed", False),    # a new next hop still forwards
])
def test_an_undeclared_route_turned_blackhole_is_a_loss(after_hops, kind, blocking):
    # given r1's customer route now points at a blackhole (a proposal that "advertises" by Null0)
    s1 = copy.deepcopy(S0)
    s1["nodes"]["r1"]["routes"]["192.0.2.0/24"] = {"protocol": "static", "distance": 1, "metric": 0,
                                                   "nexthops": after_hops}
    # when the diff is classified with nothing declared
    [item] = diff_classify(snapshot_diff(S0, s1), EMPTY_EXPECT)["undeclared"]
    # then a blackhole is a loss (blocks), a plain change is not
    assert item["kind"] == kind and item["loss"] is blocking


def test_a_declared_blackhole_is_intended():
    s1 = copy.deepcopy(S0)
    s1["nodes"]["r1"]["routes"]["192.0.2.0/24"] = {"protocol": "static", "distance": 1, "metric": 0,
                                                   "nexthops": ["blackhole"]}
    expect = {**EMPTY_EXPECT, "prefixes_removed": {"r1": ["192.0.2.0/24"]}}
    c = diff_classify(snapshot_diff(S0, s1), expect)
    assert c["undeclared"] == [] and [i["kind"] for i in c["intended"]] == ["route_blackholed"]
