"""Risk rubric and verdict rules as tables."""

from __future__ import annotations

import pytest

from preflight.core.risk import RUBRIC_VERSION, policy_objects, risk_assess
from preflight.core.verdict import BLOCKING_CODES, reason, verdict_decide


def change(devices):
    return {"title": "t", "description": "", "devices": devices, "expect": {}, "source": "api"}


def diff_with(routes=0, sessions=0, reach_lost=0):
    entry = {"routes_added": [{"prefix": f"10.{i}.0.0/16"} for i in range(routes)], "routes_removed": [],
             "routes_changed": [], "sessions_lost": [{"peer": str(i)} for i in range(sessions)],
             "sessions_gained": [], "adjacencies_lost": [], "adjacencies_gained": []}
    return {"nodes": {"r1": entry}, "reachability_lost": ["x"] * reach_lost, "reachability_gained": []}


def cls(undeclared=0, missing=0):
    return {"intended": [], "undeclared": [{}] * undeclared, "expected_missing": ["m"] * missing}


ANNOUNCE = "ip route 10.42.0.0/24 Null0\n"


@pytest.mark.parametrize("devices, diff, classification, score, tier", [
    ({"r2": ANNOUNCE}, diff_with(routes=2), cls(), 1, "low"),                 # low-criticality node, declared
    ({"r1": ANNOUNCE}, diff_with(routes=2), cls(), 4, "medium"),              # the high-criticality core
    ({"r2": ANNOUNCE}, diff_with(routes=2), cls(undeclared=2), 4, "medium"),  # undeclared effects
    ({"r2": ANNOUNCE}, diff_with(routes=0), cls(missing=1), 4, "medium"),     # declared effect not seen
    ({"r2": ANNOUNCE}, diff_with(routes=5), cls(), 2, "low"),                 # 5 route effects: +1
    ({"r2": ANNOUNCE}, diff_with(routes=21), cls(), 3, "medium"),             # 21 route effects: +2
    ({"r2": ANNOUNCE}, diff_with(sessions=1), cls(), 3, "medium"),            # a session affected
    ({"r2": ANNOUNCE}, diff_with(sessions=3), cls(), 4, "medium"),
    ({"r2": "ip prefix-list P seq 5 permit 10.0.0.0/8\n"}, diff_with(), cls(), 1, "low"),  # nothing references P
    ({"r1": "route-map A permit 10\nroute-map B permit 10\n"}, diff_with(), cls(), 4, "medium"),  # unreferenced
    ({"r1": "ip prefix-list PL-IN seq 20 permit 10.9.0.0/16\n"}, diff_with(), cls(), 6, "high"),  # in use: +2
    ({"r1": "route-map FROM-R2 permit 20\n"}, diff_with(), cls(), 6, "high"),      # a route-map in use
    ({"r2": "ip prefix-list P seq 5 permit 10.0.0.0/8\nrouter bgp 65002\n address-family ipv4 unicast\n"
            "  neighbor 10.0.12.0 prefix-list P in\n"}, diff_with(), cls(), 4, "medium"),  # wired in: P + neighbour
    ({"r1": "router bgp 65001\n neighbor 10.0.12.1 description to r2 (CHG-7)\n"}, diff_with(), cls(), 0, "low"),
    ({"r1": "interface eth1\n description uplink\n"}, diff_with(), cls(), 0, "low"),  # cosmetic on the core
    ({"r2": ANNOUNCE}, {"nodes": {n: diff_with(routes=4)["nodes"]["r1"] for n in ("r1", "r2", "r3")},
                        "reachability_lost": [], "reachability_gained": []}, cls(), 1, "low"),  # 4 prefixes x 3 nodes
    ({"r1": ANNOUNCE, "r2": ANNOUNCE}, diff_with(routes=2), cls(), 5, "medium"),  # two devices
    ({"r2": ANNOUNCE}, diff_with(reach_lost=1), cls(), 3, "medium"),
    ({"r2": ANNOUNCE}, None, None, 1, "low"),                                  # no twin ran (static stop)
])
def test_rubric_table(pair, devices, diff, classification, score, tier):
    risk = risk_assess(change(devices), pair, classification, diff)
    assert (risk["score"], risk["tier"]) == (score, tier), risk["factors"]
    assert risk["rubric_version"] == RUBRIC_VERSION
    assert sum(f["points"] for f in risk["factors"]) == risk["score"]


@pytest.mark.parametrize("default, points, tier", [("low", 0, "low"), ("medium", 1, "low"), ("high", 3, "medium")])
def test_default_criticality_is_a_site_setting(pair, default, points, tier):
    pair.nodes["r2"].labels = {}
    risk = risk_assess(change({"r2": ANNOUNCE}), pair, cls(), diff_with(), default_criticality=default)
    crit = {f["name"]: f for f in risk["factors"]}["max_criticality"]
    assert (crit["value"], crit["points"], risk["tier"]) == (default, points, tier)
    assert risk["default_criticality"] == default


def test_default_criticality_must_be_a_tier(pair):
    with pytest.raises(ValueError, match="low, medium, high"):
        risk_assess(change({"r2": ANNOUNCE}), pair, cls(), diff_with(), default_criticality="critical")


def test_lines_frr_reinterpreted_raise_risk(pair):
    ledger = {"available": True, "devices": {"r2": {"lines": [{"status": "reinterpreted"}], "unrequested": []}}}
    risk = risk_assess(change({"r2": ANNOUNCE}), pair, cls(), diff_with(), ledger=ledger)
    assert {f["name"]: f["points"] for f in risk["factors"]}["lines_reinterpreted"] == 3
    assert risk["tier"] == "medium"


def test_missing_criticality_label_counts_as_medium(pair):
    pair.nodes["r2"].labels = {}
    risk = risk_assess(change({"r2": ANNOUNCE}), pair, cls(), diff_with())
    assert {f["name"]: f for f in risk["factors"]}["max_criticality"] == {"name": "max_criticality",
                                                                          "value": "medium", "points": 1}


def test_policy_objects_are_named_per_device():
    assert policy_objects(change({"r1": "route-map RM permit 10\n match x\nip prefix-list PL seq 5 permit 10.0.0.0/8\n"
                                        "router bgp 1\n neighbor 10.0.0.1 remote-as 2\n"})) == [
        "r1:neighbor 10.0.0.1", "r1:prefix-list PL", "r1:route-map RM"]


@pytest.mark.parametrize("codes, tier, verdict, added", [
    ([], "low", "ship_ready", "CLEAN"),
    ([], "medium", "needs_approval", "RISK_MEDIUM"),
    ([], "high", "needs_approval", "RISK_HIGH"),
    (["UNDECLARED_EFFECT"], "medium", "needs_approval", "RISK_MEDIUM"),
    (["EXPECTED_EFFECT_MISSING"], "medium", "needs_approval", "RISK_MEDIUM"),
    ([], None, "blocked", "TWIN_INCOMPLETE"),
    *[([code], "low", "blocked", None) for code in sorted(BLOCKING_CODES)],
    (["UNDECLARED_EFFECT", "SESSION_LOST"], "low", "blocked", None),
])
def test_verdict_table(codes, tier, verdict, added):
    reasons = [reason(c, f"message for {c}") for c in codes]
    got, out = verdict_decide(reasons, tier)
    assert got == verdict
    assert out[: len(reasons)] == reasons
    if added:
        assert out[-1]["code"] == added and out[-1]["message"]
    else:
        assert out == reasons
