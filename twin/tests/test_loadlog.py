"""What vtysh printed while loading a config -> refused lines vs harmless warnings.
The samples are FRR 8.4.4's own words from ../shared/corpus/README.md."""

from __future__ import annotations

from twin.loadlog import classify_vtysh_output

CONFIG = """hostname r1
interface r1-eth0
 ip ospf area 0
router ospf
 network 10.0.1.0/24 area 0
 passive interface lo
router bgp 65001
 timers 3 10
 neighbor 10.0.0.2 route-map r2 in
 neighbor 10.0.0.3 route-map never in
route-map r2 permit 10
log file zebra.log
"""


def test_parse_errors_become_rejected_lines_with_line_numbers():
    out = "line 6: % Unknown command[41]:  passive interface lo\nline 8: % Unknown command[25]:  timers 3 10\n"
    rejected, warnings = classify_vtysh_output("r1", out, CONFIG)
    assert [(r.line_no, r.line, r.message) for r in rejected] == [
        (6, "passive interface lo", "% Unknown command"), (8, "timers 3 10", "% Unknown command")]
    assert warnings == []


def test_daemon_refusal_carries_the_daemons_explanation():
    out = ("Please remove all ip ospf area x.x.x.x commands first.\n"
           "Failure to communicate[13] to ospfd, line:  network 10.0.1.0/24 area 0\n")
    rejected, warnings = classify_vtysh_output("r1", out, CONFIG)
    assert len(rejected) == 1
    assert rejected[0].line == "network 10.0.1.0/24 area 0"
    assert rejected[0].message == "Please remove all ip ospf area x.x.x.x commands first."
    assert rejected[0].line_no == 5
    assert warnings == []


def test_harmless_classes_are_warnings_not_rejections():
    out = ("The route-map 'r2' does not exist.\n"
           "The route-map 'never' does not exist.\n"
           "can't open logfile zebra.log\n"
           "Failure to communicate[13] to zebra, line: log file zebra.log\n"
           "This command is deprecated, because it is not VRF-aware.\n"
           'Please, use "ip ospf passive" on an interface instead.\n'
           "Graceful restart configuration changed, reset all peers to take effect\n"
           "% Echo mode works correctly for IPv4, but only works when the peer is also FRR for IPv6.\n"
           "Configuration file[/etc/frr/frr.conf] processing failure: 2\n")
    rejected, warnings = classify_vtysh_output("r1", out, CONFIG)
    assert rejected == []
    text = "\n".join(warnings)
    assert "route-map r2 referenced before it is defined" in text
    assert "route-map never is referenced but never defined" in text
    assert "relative log file" in text
    assert "deprecated" in text and "Graceful restart" in text and "Echo mode" in text
    assert "processing failure" not in text  # vtysh's own summary of the lines already listed


def test_command_incomplete_without_line_prefix_finds_its_line():
    rejected, _ = classify_vtysh_output("r1", "% Command incomplete[42]: interface r1-eth0\n", CONFIG)
    assert rejected[0].line_no == 2 and rejected[0].message == "% Command incomplete"


def test_protocol_json_normalisers_use_frr_8_4_field_names():
    # shapes as FRR 8.4.4 prints them (trimmed)
    from twin.netns import _bfd_peers, _ospf6_interfaces, _ospf_interfaces, _ospf_neighbors
    assert _ospf6_interfaces({"lo": {"status": "up"}, "r2-eth2": {"attachedToArea": True,
                                                                 "ospf6InterfaceState": "Waiting"}}) == {
        "r2-eth2": "Waiting"}
    assert _ospf_interfaces({"interfaces": {"r2-eth1": {"ospfEnabled": True, "state": "Waiting"}}}) == {
        "r2-eth1": "Waiting"}
    assert _ospf_neighbors({"neighbors": {"10.0.0.2": [{"nbrState": "Full/DR", "ifaceName": "eth1:10.0.0.1"}]}}) \
        == {"10.0.0.2@eth1": "Full"}
    peers = [{"peer": "fe80::2", "interface": "eth2", "vrf": "default", "multihop": False, "status": "up", "id": 7},
             {"peer": "10.0.0.9", "vrf": "default", "multihop": True, "status": "down", "id": 9}]
    assert _bfd_peers(peers) == _bfd_peers(list(reversed(peers))) == {
        "fe80::2|eth2": {"status": "up"}, "10.0.0.9||multihop": {"status": "down"}}
