"""Static analysis: FRR's own parser tied to the change's lines, and the semantic checks."""

from __future__ import annotations

import shutil

import pytest

from preflight.core.static import frr_dryrun, semantic_check, static_check


def change(devices: dict[str, str]) -> dict:
    return {"title": "t", "description": "", "devices": devices, "expect": {}, "source": "api"}


needs_vtysh = pytest.mark.skipif(shutil.which("vtysh") is None, reason="vtysh (FRR) is not installed")


@needs_vtysh
def test_dryrun_ties_errors_to_the_change_line_not_the_candidate_line(pair):
    text = "ip route 10.42.0.0/24 Null0\nrouter bgp 65001\n address-family ipv4 unicast\n  netwrok 10.42.0.0/24\n"
    findings = frr_dryrun("r1", pair.nodes["r1"].frr_conf, text)
    assert [(f["line_no"], f["code"], f["severity"]) for f in findings] == [(4, "FRR_SYNTAX", "error")]
    assert findings[0]["line"] == "  netwrok 10.42.0.0/24"
    assert "Unknown command" in findings[0]["message"]


@needs_vtysh
def test_dryrun_judges_change_lines_in_a_fresh_context(pair):
    # `network` outside `router bgp` is invalid even though the baseline ends inside BGP.
    baseline = "router bgp 65001\n address-family ipv4 unicast\n  network 10.255.0.1/32\n"
    findings = frr_dryrun("r1", baseline, "network 10.42.0.0/24\n")
    assert [f["line_no"] for f in findings] == [1]


@needs_vtysh
def test_dryrun_reads_past_the_baselines_end(triangle):
    # The bundled configs end with `end`, at which vtysh stops reading a file.
    assert triangle.nodes["r3"].frr_conf.rstrip().endswith("end")
    findings = frr_dryrun("r3", triangle.nodes["r3"].frr_conf, "bogus command\n")
    assert [f["line_no"] for f in findings] == [1]


@needs_vtysh
def test_clean_change_has_no_findings(pair):
    text = "ip route 10.42.0.0/24 Null0\nrouter bgp 65001\n address-family ipv4 unicast\n  network 10.42.0.0/24\n"
    assert static_check(change({"r1": text}), pair) == []


SEMANTIC = [
    ({"r1": "router bgp 65001\n address-family ipv4 unicast\n  neighbor 10.0.12.1 route-map NOPE out\n"},
     ("r1", 3, "UNDEFINED_REFERENCE", "error"), "route-map NOPE is used here but not defined"),
    ({"r1": "route-map RM permit 10\n match ip address prefix-list MISSING\n"},
     ("r1", 2, "UNDEFINED_REFERENCE", "error"), "prefix-list MISSING"),
    ({"r1": "route-map RM permit 10\n match community CL1\n"},
     ("r1", 2, "UNDEFINED_REFERENCE", "error"), "community-list CL1"),
    ({"r1": "no route-map FROM-R2\n"},
     ("r1", 1, "UNDEFINED_REFERENCE", "error"), "removes route-map FROM-R2, which is still used"),
    ({"r1": "no ip prefix-list PL-IN\n"},
     ("r1", 1, "UNDEFINED_REFERENCE", "error"), "removes prefix-list PL-IN"),
    ({"r1": "router bgp 65001\n neighbor 10.0.12.1 remote-as 65009\n"},
     ("r1", 2, "REMOTE_AS_MISMATCH", "error"), "does not match r2's own AS 65002"),
    ({"r1": "router bgp 65001\n neighbor 10.0.12.1 remote-as internal\n"},
     ("r1", 2, "REMOTE_AS_MISMATCH", "error"), "remote-as internal"),
    ({"r1": "router bgp 65001\n neighbor 10.0.99.1 remote-as 65002\n"},
     ("r1", 2, "PEER_UNKNOWN", "warning"), "no node in the lab has address 10.0.99.1"),
    ({"r1": "interface eth1\n ip address 10.0.12.1/31\n"},
     ("r1", 2, "DUPLICATE_ADDRESS", "error"), "10.0.12.1 is already configured on r2:eth1"),
    ({"r1": "interface eth7\n description nowhere\n"},
     ("r1", 1, "UNKNOWN_INTERFACE", "error"), "interface eth7 does not exist on r1"),
    ({"r1": "interface eth1\n ip ospf area 0\nrouter ospf\n network 10.255.0.1/32 area 0\n"},
     ("r1", 2, "OSPF_AREA_MIXED", "error"), "cannot be mixed"),
]


@pytest.mark.parametrize("devices, where, fragment", SEMANTIC)
def test_semantic_findings(pair, devices, where, fragment):
    findings = semantic_check(change(devices), pair)
    got = [(f["device"], f["line_no"], f["code"], f["severity"]) for f in findings]
    assert got == [where], findings
    assert fragment in findings[0]["message"]


def test_defining_and_using_in_the_same_change_is_fine(pair):
    text = ("ip prefix-list PL-OUT seq 5 permit 10.255.0.1/32\nroute-map TO-R2 permit 10\n"
            " match ip address prefix-list PL-OUT\nexit\nrouter bgp 65001\n address-family ipv4 unicast\n"
            "  neighbor 10.0.12.1 route-map TO-R2 out\n")
    assert semantic_check(change({"r1": text}), pair) == []


def test_correct_remote_as_on_both_sides_is_fine(pair):
    assert semantic_check(change({"r1": "router bgp 65001\n neighbor 10.0.12.1 remote-as 65002\n"}), pair) == []


def test_baseline_quirks_are_not_blamed_on_the_change(pair):
    # The lab's own configs are not findings of a change that does not touch them.
    pair.nodes["r2"].frr_conf += "route-map BROKEN permit 10\n match ip address prefix-list NOWHERE\nexit\n"
    assert semantic_check(change({"r1": "ip route 10.9.0.0/16 Null0\n"}), pair) == []
