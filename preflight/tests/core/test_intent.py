"""Inferred intent: what the lines obviously mean, in expect's shape (no twin)."""

from __future__ import annotations

import pytest

from preflight.core.diff import diff_classify
from preflight.core.intent import intent_infer, intent_is_empty


def change(devices):
    return {"title": "t", "description": "", "devices": devices, "expect": {"declared": False}, "source": "api"}


@pytest.mark.parametrize("device, lines, key, value", [
    ("r3", "ip route 198.51.100.0/24 Null0\n", "prefixes_added", {"*": ["198.51.100.0/24"]}),
    ("r3", "router bgp 65003\n address-family ipv4 unicast\n  network 198.51.100.0/24\n", "prefixes_added",
     {"*": ["198.51.100.0/24"]}),
    ("r3", "router bgp 65003\n address-family ipv4 unicast\n  no network 192.0.2.0/24\n", "prefixes_removed",
     {"*": ["192.0.2.0/24"]}),
    ("r3", "router bgp 65003\n address-family ipv4 unicast\n  redistribute static\n", "prefixes_added",
     {"*": ["192.0.2.0/24"]}),
    ("r2", "interface lo\n ip address 10.255.9.2/32\n", "prefixes_added", {"*": ["10.255.9.2/32"]}),
    ("r1", "interface eth1\n ip ospf cost 50\n", "prefixes_changed", {"*": ["*"]}),
])
def test_prefix_intent(triangle, device, lines, key, value):
    assert intent_infer(change({device: lines}), triangle)[key] == value


def test_a_neighbour_shutdown_ends_the_session_on_both_ends(triangle):
    intent = intent_infer(change({"r2": "router bgp 65002\n neighbor 10.0.23.1 shutdown\n"}), triangle)
    assert intent["sessions_removed"] == [{"node": "r2", "peer": "10.0.23.1"}, {"node": "r3", "peer": "10.0.23.0"}]
    assert intent["prefixes_changed"] == {"*": ["*"]} and intent["basis"]


def test_an_interface_shutdown_ends_what_runs_over_it(triangle):
    intent = intent_infer(change({"r2": "interface eth2\n shutdown\n"}), triangle)
    assert {"node": "r3", "peer": "10.0.23.0"} in intent["sessions_removed"]
    assert {"node": "r3", "peer": "*@eth1"} in intent["sessions_removed"]  # OSPF/BFD on the far side
    assert intent["prefixes_removed"] == {"*": ["10.0.23.0/31"]}


def test_a_removed_address_withdraws_its_subnet_but_does_not_intend_the_sessions(triangle):
    intent = intent_infer(change({"r2": "interface eth2\n no ip address 10.0.23.0/31\n"}), triangle)
    assert intent["prefixes_removed"] == {"*": ["10.0.23.0/31"]} and intent["sessions_removed"] == []


@pytest.mark.parametrize("lines", [
    "router bgp 65002\n neighbor 10.0.23.1 description r3 transit\n",
    "ip prefix-list UNUSED seq 5 permit 10.0.0.0/8\n",
    "interface eth1\n description uplink\n",
])
def test_cosmetic_and_unreferenced_lines_intend_nothing(triangle, lines):
    assert intent_is_empty(intent_infer(change({"r2": lines}), triangle))


def test_effects_matching_the_inferred_intent_are_intended_the_rest_undeclared(triangle):
    intent = intent_infer(change({"r3": "ip route 198.51.100.0/24 Null0\n"}), triangle)
    diff = {"nodes": {"r3": {"routes_added": [{"prefix": "198.51.100.0/24"}], "routes_removed": [],
                             "routes_changed": [{"prefix": "10.255.0.1/32", "before": {}, "after": {}}],
                             "sessions_lost": [{"peer": "10.0.13.0", "before": "Established", "after": "Idle"}],
                             "sessions_gained": [], "adjacencies_lost": [], "adjacencies_gained": []}},
            "reachability_lost": [], "reachability_gained": []}
    got = diff_classify(diff, intent)
    assert [i["kind"] for i in got["intended"]] == ["route_added"]
    assert [i["kind"] for i in got["undeclared"]] == ["route_changed", "session_lost"]
    assert got["expected_missing"] == []
