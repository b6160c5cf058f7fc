"""The bundled triangle as a real twin: converge, equal snapshots, reachability, apply,
running config, frr-reload, teardown. One twin for the module (it is read-mostly); the tests
that change it undo their change."""

from __future__ import annotations

import os

import pytest

from twin.base import TwinError
from twin.netns import mac_for

from .conftest import requires_netns

pytestmark = [requires_netns, pytest.mark.twin]


def test_node_is_a_container_without_docker(triangle_twin):
    twin = triangle_twin
    # hostname from the private UTS namespace, /etc/frr from the node's own folder
    out = twin.vtysh("r2", "show running-config")
    assert "hostname r2" in out
    assert "router bgp 65002" in out
    holder = twin.holders["r1"]
    assert os.readlink(f"/proc/{holder}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{holder}/ns/net") != os.readlink("/proc/self/ns/net")
    # the host's own /etc/frr is untouched
    with open("/etc/frr/frr.conf") as fh:
        assert "router bgp 65001" not in fh.read()
    assert twin.facts["tier"] == "real" and twin.facts["frr_version"] == "8.4.4"
    assert twin.load_errors == []


def test_no_daemon_listens_on_tcp(triangle_twin):
    out = triangle_twin.vtysh("r1", "show bgp summary")  # warm
    assert "Established" in out or "Estab" in out or "10.0.12.1" in out
    import subprocess
    ss = subprocess.run(["ip", "netns", "exec", triangle_twin.ns("r1"), "ss", "-ltnH"],
                        capture_output=True, text=True).stdout
    # bgpd must listen on 179 (that is BGP itself); no vty port (2601..2620) may be open
    ports = {int(line.split()[3].rsplit(":", 1)[1]) for line in ss.splitlines() if line.strip()}
    assert ports <= {179}, ports


def test_deterministic_macs(triangle_twin):
    import subprocess
    out = subprocess.run(["ip", "-n", triangle_twin.ns("r1"), "link", "show", "eth1"],
                         capture_output=True, text=True).stdout
    assert mac_for("triangle", "r1", "eth1") in out


def test_snapshots_of_an_unchanged_network_are_equal(triangle_twin):
    a = triangle_twin.snapshot()
    b = triangle_twin.snapshot()
    assert a == b
    r1 = a["nodes"]["r1"]
    assert r1["bgp"]["10.0.12.1"]["state"] == "Established"
    assert r1["bgp"]["10.0.12.1"]["remote_as"] == 65002
    assert r1["routes"]["192.0.2.0/24"]["protocol"] == "bgp"
    assert r1["routes"]["10.255.0.3/32"]["nexthops"] == ["10.0.13.1@eth2"]
    assert r1["bgp_best"]["10.255.0.2/32"]["as_path"] == "65002"
    assert r1["interfaces"]["lo"]["addresses"] == ["10.255.0.1/32"]
    reach = a["reachability"]
    assert reach["sampled"] is False and len(reach["pairs"]) == 6 and all(reach["pairs"].values())


def test_apply_returns_refused_lines_with_frrs_message_and_reach_follows(triangle_twin):
    twin = triangle_twin
    result = twin.apply("r3", "interface lo\n ip address 10.255.0.33/32\nexit\nrouter bgp 65003\n"
                              " address-family ipv4 unicast\n  network 10.255.0.33/32\n  frobnicate 7\n")
    try:
        assert [(r.line, r.message, r.line_no) for r in result.rejected] == [
            ("frobnicate 7", "% Unknown command", 7)]
        assert "  network 10.255.0.33/32" in result.applied
        conv = twin.converge(30, stable_for=1.0)
        assert conv.converged
        assert twin.reach("r1", "10.255.0.33")
        assert "network 10.255.0.33/32" in twin.running_config("r3")
    finally:
        twin.apply("r3", "router bgp 65003\n address-family ipv4 unicast\n  no network 10.255.0.33/32\n"
                         "interface lo\n no ip address 10.255.0.33/32\n")
    twin.converge(30, stable_for=1.0)
    assert not twin.reach("r1", "10.255.0.33")


def test_reload_config_test_only_then_apply_then_restore(triangle_twin):
    twin = triangle_twin
    before = twin.running_config("r1")
    assert before.startswith("frr version")
    target = before.replace("router bgp 65001\n", "ip route 10.77.0.0/16 Null0\n!\nrouter bgp 65001\n", 1)
    dry = twin.reload_config("r1", target, test_only=True)
    assert dry.applied is False
    assert any("ip route 10.77.0.0/16 Null0" in line for line in dry.lines_to_add)
    assert "10.77.0.0/16" not in twin.running_config("r1")
    done = twin.reload_config("r1", target)
    assert done.applied, done.output[-2000:]
    assert "ip route 10.77.0.0/16 Null0" in twin.running_config("r1")
    back = twin.reload_config("r1", before)
    # frr-reload lists the removal of a top-level line as a "no ..." line to add
    assert back.applied and any("no ip route 10.77.0.0/16" in line for line in back.lines_to_delete + back.lines_to_add)
    assert "10.77.0.0/16" not in twin.running_config("r1")


def test_unknown_node_and_bad_address_are_clear_errors(triangle_twin):
    with pytest.raises(TwinError, match="unknown router 'r9'"):
        triangle_twin.running_config("r9")
    with pytest.raises(TwinError, match="not an IP address"):
        triangle_twin.reach("r1", "10.0.0.1; reboot")


def test_reads_inside_the_settle_window_are_kept_only_if_nothing_moved_while_they_ran(triangle_twin):
    # Given a settled twin and reads handed to converge (`alongside`): when nothing moves, they
    # run once inside the window and what they read is what the network shows after it.
    twin = triangle_twin
    calls: list[int] = []

    def still() -> dict:
        calls.append(1)
        return twin.snapshot()

    cr = twin.converge(30, stable_for=1.0, alongside=still)
    assert cr.converged and len(calls) == 1
    assert cr.alongside.result() == twin.snapshot()
    # The sweep that decided read every router's tables in its own vtysh call: what a
    # snapshot without pings reads, for the pipeline to compare with the reads.
    assert cr.tables == twin.snapshot(reachability=False)["nodes"] == cr.alongside.result()["nodes"]
    # Without reads, no tables: the sweeps stay as small as before.
    assert twin.converge(30, stable_for=1.0).tables is None
    # When a route appears while the first reads run (a change after their start), they are
    # void: converge runs them again once the network is still, and returns the second reads.
    seen: list[bool] = []

    def moving() -> dict:
        if not seen:
            twin.apply("r3", "ip route 10.98.0.0/24 Null0\n")
        snap = twin.snapshot(reachability=False)
        seen.append("10.98.0.0/24" in snap["nodes"]["r3"]["routes"])
        return snap

    try:
        cr = twin.converge(30, stable_for=1.0, alongside=moving)
        assert cr.converged and len(seen) == 2
        assert "10.98.0.0/24" in cr.alongside.result()["nodes"]["r3"]["routes"]
        assert "10.98.0.0/24" in cr.tables["r3"]["routes"]
    finally:
        twin.apply("r3", "no ip route 10.98.0.0/24 Null0\n")
    assert twin.converge(30, stable_for=1.0).converged
    # An address no router has a route to: not reached (the request cannot leave r1).
    assert twin.reach("r1", "203.0.113.1") is False
