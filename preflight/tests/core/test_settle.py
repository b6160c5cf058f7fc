"""The settle window: which protocol timer a change must wait for, read from the lab's configs."""

from __future__ import annotations

import pytest

from preflight.core.settle import change_touches, settle_window
from twin.base import Endpoint, Link, Node, Topology


def change(devices):
    return {"title": "t", "description": "", "devices": devices, "expect": {}, "source": "api"}


def lab(r1: str, r2: str, daemons=("zebra", "staticd", "bgpd")) -> Topology:
    return Topology(name="t", nodes={"r1": Node("r1", "frr", frr_conf=r1, daemons=list(daemons)),
                                     "r2": Node("r2", "frr", frr_conf=r2, daemons=list(daemons))},
                    links=[Link(Endpoint("r1", "eth1"), Endpoint("r2", "eth1"))], source="/x/t.clab.yml")


BGP1 = """frr defaults {d}
interface eth1
 ip address 10.0.0.0/31
exit
router bgp 1
 neighbor 10.0.0.1 remote-as 2
{t1}exit
"""
BGP2 = """frr defaults {d}
interface eth1
 ip address 10.0.0.1/31
exit
router bgp 2
 neighbor 10.0.0.0 remote-as 1
{t2}exit
"""


def bgp_lab(d="datacenter", t1="", t2=""):
    return lab(BGP1.format(d=d, t1=t1), BGP2.format(d=d, t2=t2))


@pytest.mark.parametrize("topo, seconds, source", [
    (bgp_lab(), 9.0, "frr defaults datacenter"),                                  # datacenter: keepalive 3, hold 9
    (bgp_lab(d="traditional"), 100.0, "FRR default (traditional)"),               # 180 s, bounded by 100
    (bgp_lab(t1=" neighbor 10.0.0.1 timers 5 30\n"), 9.0, "frr defaults datacenter"),  # the smaller end wins
    (bgp_lab(t1=" neighbor 10.0.0.1 timers 5 30\n", t2=" timers bgp 5 30\n"), 30.0, "timers bgp 5 30"),
])
def test_bgp_hold_from_the_lab(topo, seconds, source):
    w = settle_window(topo, change({"r1": "interface eth1\n shutdown\n"}), converge_timeout=100)
    assert (w.timer, w.seconds) == ("bgp_hold", seconds)
    assert w.source.endswith(source)
    assert w.bounded is (seconds == 100.0)
    assert w.touches and "link" in w.touches[0]


@pytest.mark.parametrize("lines", [
    "ip route 10.9.0.0/24 Null0\n",
    "router bgp 1\n neighbor 10.0.0.1 description peer\n",
    "ip prefix-list P seq 5 permit 10.0.0.0/8\n",
    "interface eth1\n description uplink\n",
    "interface lo\n ip address 10.255.9.1/32\n",  # an added address ends no session
])
def test_changes_that_touch_no_link_session_or_timer_have_no_window(lines):
    w = settle_window(bgp_lab(), change({"r1": lines}), converge_timeout=100)
    assert w.seconds == 0.0 and w.timer is None


@pytest.mark.parametrize("lines, kind", [
    ("router bgp 1\n neighbor 10.0.0.1 shutdown\n", "bgp"),
    ("router bgp 1\n no neighbor 10.0.0.1\n", "bgp"),
    ("router bgp 1\n neighbor 10.0.0.1 timers 1 3\n", "bgp"),
    ("interface eth1\n no ip address 10.0.0.0/31\n", "link"),
    ("interface eth1\n ip ospf dead-interval 12\n", "ospf"),
    ("router ospf\n network 10.0.0.0/31 area 0\n", "ospf"),
    ("bfd\n peer 10.0.0.1\n", "bfd"),
])
def test_what_a_change_touches(lines, kind):
    assert kind in change_touches(change({"r1": lines}))


OSPF = """interface eth1
 ip address 10.0.0.{n}/31
{dead}exit
router ospf
 network 10.0.0.0/31 area 0
exit
"""


def test_ospf_dead_interval_default_and_configured():
    topo = lab(OSPF.format(n=0, dead=""), OSPF.format(n=1, dead=" ip ospf dead-interval 12\n"),
               daemons=("zebra", "staticd", "ospfd"))
    w = settle_window(topo, change({"r2": "interface eth1\n shutdown\n"}), converge_timeout=120)
    assert (w.timer, w.node, w.subject, w.seconds) == ("ospf_dead", "r1", "eth1", 40.0)
    topo.nodes["r1"].frr_conf = OSPF.format(n=0, dead=" ip ospf dead-interval minimal hello-multiplier 4\n")
    w = settle_window(topo, change({"r2": "interface eth1\n shutdown\n"}), converge_timeout=120)
    assert (w.node, w.seconds) == ("r2", 12.0)


def test_bundled_labs(triangle):
    w = settle_window(triangle, change({"r2": "interface eth2\n no ip address 10.0.23.0/31\n"}), 120)
    assert (w.timer, w.seconds) == ("bgp_hold", 9.0)
    assert w.as_dict()["timer_seconds"] == 9.0
