"""The per-line ledger from frr-reload's own delta (vtysh -m parses on the host; no daemon, no twin).

The running configs after the apply are the ones FRR 8.4.4 printed in a real twin for these
lines (see docs/pipeline.md, "Per-line ledger"), so each case is what FRR really does.
"""

from __future__ import annotations

import shutil

import pytest

from preflight.core.ledger import daemon_messages, line_ledger

pytestmark = pytest.mark.skipif(shutil.which("vtysh") is None, reason="needs FRR's vtysh (vtysh -m parses)")

BEFORE = """frr version 8.4.4
frr defaults datacenter
hostname r3
ip route 192.0.2.0/24 Null0
interface eth1
 description to r2
 ip address 10.0.23.1/31
exit
router bgp 65003
 bgp router-id 10.255.0.3
 neighbor 10.0.23.0 remote-as 65002
 neighbor 10.0.23.0 description r2
 address-family ipv4 unicast
  network 10.255.0.3/32
  network 192.0.2.0/24
 exit-address-family
exit
"""


def ledger(change: str, after: str, output: str = "", rejected=None):
    from twin.frrdelta import config_delta, config_items, contexts_of

    return line_ledger("r3", change, config_items(change), config_delta(BEFORE, after), contexts_of(after),
                       rejected or [], output)


def statuses(led):
    return [(e["line"], e["status"]) for e in led["lines"]]


def test_applied_lines_and_their_block_headers():
    change = "ip route 198.51.100.0/24 Null0\nrouter bgp 65003\n address-family ipv4 unicast\n  network 198.51.100.0/24\n"
    after = BEFORE.replace("ip route 192.0.2.0/24 Null0\n", "ip route 192.0.2.0/24 Null0\nip route 198.51.100.0/24 Null0\n"
                           ).replace("  network 192.0.2.0/24\n", "  network 192.0.2.0/24\n  network 198.51.100.0/24\n")
    led = ledger(change, after)
    assert statuses(led) == [("ip route 198.51.100.0/24 Null0", "applied"), ("router bgp 65003", "applied"),
                             ("address-family ipv4 unicast", "applied"), ("network 198.51.100.0/24", "applied")]
    assert led["unrequested"] == [] and not led["delta_empty"]


def test_a_line_for_a_daemon_that_does_not_run_is_not_applied():
    # r3 runs no ospfd: vtysh exits 0 and the running config does not change.
    led = ledger("interface eth1\n ip ospf cost 10\n", BEFORE)
    assert statuses(led) == [("interface eth1", "applied"), ("ip ospf cost 10", "not_applied")]
    assert led["delta_empty"]


def test_a_daemon_refusal_with_exit_status_0_is_a_rejection_with_frr_words():
    led = ledger("no ip route 203.0.113.0/24 Null0\n", BEFORE, output="% Refusing to remove a non-existent route\n")
    (entry,) = led["lines"]
    assert entry["status"] == "rejected" and entry["frr_said"] == "% Refusing to remove a non-existent route"
    assert entry["detected"].startswith("daemon output")


def test_already_is_a_no_op_not_a_rejection():
    led = ledger("router ospf\n network 10.0.23.0/31 area 0\n", BEFORE,
                 output="There is already same network statement.\n")
    assert led["lines"][-1]["status"] == "not_applied"
    assert "already" in led["lines"][-1]["frr_said"]


def test_a_reinterpreted_line_names_what_frr_made_of_it():
    # bgpd caps the keepalive at a third of the hold time: `timers 5 4` runs as `timers 1 4`.
    after = BEFORE.replace(" neighbor 10.0.23.0 description r2\n",
                           " neighbor 10.0.23.0 description r2\n neighbor 10.0.23.0 timers 1 4\n")
    led = ledger("router bgp 65003\n neighbor 10.0.23.0 timers 5 4\n", after)
    entry = led["lines"][-1]
    assert (entry["status"], entry["became"]) == ("reinterpreted", "neighbor 10.0.23.0 timers 1 4")


def test_a_replaced_value_is_part_of_its_line_not_unrequested():
    after = BEFORE.replace("neighbor 10.0.23.0 description r2", "neighbor 10.0.23.0 description r2 transit")
    led = ledger("router bgp 65003\n neighbor 10.0.23.0 description r2 transit\n", after)
    assert statuses(led)[-1] == ("neighbor 10.0.23.0 description r2 transit", "applied")
    assert led["unrequested"] == []


def test_a_change_the_lines_did_not_ask_for_is_unrequested():
    after = BEFORE.replace("hostname r3\n", "hostname r3\nip route 10.99.0.0/16 Null0\n")
    led = ledger("interface eth1\n ip ospf cost 10\n", after)
    assert led["unrequested"] == [{"node": "r3", "change": "added", "context": [], "line": "ip route 10.99.0.0/16 Null0"}]


def test_removal_lines_and_vtysh_rejections():
    after = BEFORE.replace("  network 192.0.2.0/24\n", "")
    led = ledger("router bgp 65003\n address-family ipv4 unicast\n  no network 192.0.2.0/24\n  bogus 1\n", after,
                 rejected=[{"node": "r3", "line": "bogus 1", "line_no": 4, "message": "% Unknown command"}])
    assert statuses(led)[-2:] == [("no network 192.0.2.0/24", "applied"), ("bogus 1", "rejected")]


def test_daemon_messages_keep_line_numbers():
    out = "line 2: % Cannot have local-as same as BGP AS number\nall good\n% Can't open configuration file x\n"
    assert daemon_messages(out) == [{"line_no": 2, "text": "% Cannot have local-as same as BGP AS number"}]
