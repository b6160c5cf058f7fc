"""Snapshot route normalisation of FRR's route JSON."""

from __future__ import annotations

from twin.netns import _routes


def _connected(iface: str) -> dict:
    return {"protocol": "connected", "selected": True, "distance": 0, "metric": 0,
            "nexthops": [{"directlyConnected": True, "interfaceName": iface}]}


def test_link_local_is_not_a_route_of_the_snapshot():
    # given FRR 8.4's one connected fe80::/64, on whichever interface came up last
    before = _routes({"fe80::/64": [_connected("eth4")], "2001:db8::/64": [_connected("eth1")]})
    # when a failure scenario flapped eth1, so the link-local now shows on eth1
    after = _routes({"fe80::/64": [_connected("eth1")], "2001:db8::/64": [_connected("eth1")]})
    # then the snapshot is the same: the link-local says nothing about reachability
    assert before == after
    assert "fe80::/64" not in before and before["2001:db8::/64"]["nexthops"] == ["@eth1"]


def test_an_unselected_entry_is_not_part_of_the_route():
    backup = {**_connected("eth9"), "selected": False, "protocol": "ospf6", "distance": 110}
    routes = _routes({"2001:db8::/64": [_connected("eth1"), backup]})
    assert routes["2001:db8::/64"] == {"protocol": "connected", "distance": 0, "metric": 0, "nexthops": ["@eth1"]}
