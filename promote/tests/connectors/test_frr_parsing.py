"""What the FRR connector makes of FRR's own output (captured from FRR 8.4.4), no device needed."""

from __future__ import annotations

import pytest

from promote.connectors import ConnectorError, DeviceSpec
from promote.connectors.frr_ssh import (
    FrrSshConnector,
    bgp_summary_normalize,
    ip_route_json_normalize,
    reload_delta,
)

# frr-reload prints "  network 192.0.2.0/24 " with a trailing space; kept on purpose.
RELOAD_TEST_OUTPUT = (
    "2026-11-25 19:31:15,868  ERROR: something the log said\n"
    "\n"
    "Lines To Delete\n"
    "===============\n"
    "router bgp 65001\n"
    " no neighbor 10.0.12.1 shutdown\n"
    "\n"
    "Lines To Add\n"
    "============\n"
    "router bgp 65001\n"
    " address-family ipv4 unicast\n"
    "  network 192.0.2.0/24 \n"
    "ip route 192.0.2.0/24 Null0\n"
)


def test_reload_delta_splits_delete_and_add():
    delete, add = reload_delta(RELOAD_TEST_OUTPUT)
    assert delete == ["router bgp 65001", " no neighbor 10.0.12.1 shutdown"]
    assert add == [
        "router bgp 65001",
        " address-family ipv4 unicast",
        "  network 192.0.2.0/24",
        "ip route 192.0.2.0/24 Null0",
    ]


def test_reload_delta_of_identical_config_is_empty():
    assert reload_delta("") == ([], [])


def test_route_normalisation_keeps_selected_entries_only():
    data = {
        "192.0.2.0/24": [
            {
                "protocol": "bgp",
                "selected": None,
                "distance": 20,
                "metric": 0,
                "nexthops": [{"ip": "10.0.12.1", "interfaceName": "eth1", "active": True}],
            },
            {
                "protocol": "static",
                "selected": True,
                "distance": 1,
                "metric": 0,
                "uptime": "00:00:01",
                "nexthops": [{"flags": 1, "unreachable": True, "blackhole": True, "active": True}],
            },
        ],
        "10.0.12.0/31": [
            {
                "protocol": "connected",
                "selected": True,
                "distance": 0,
                "metric": 0,
                "nexthops": [{"directlyConnected": True, "interfaceName": "eth1", "active": True}],
            }
        ],
        "10.255.0.2/32": [
            {
                "protocol": "bgp",
                "selected": True,
                "distance": 20,
                "metric": 0,
                "nexthops": [
                    {"ip": "10.0.13.1", "interfaceName": "eth2", "active": True},
                    {"ip": "10.0.12.1", "interfaceName": "eth1", "active": True},
                    {"ip": "10.0.14.1", "interfaceName": "eth3", "active": False},
                ],
            }
        ],
    }
    routes = ip_route_json_normalize(data)
    assert routes["192.0.2.0/24"] == {
        "protocol": "static",
        "distance": 1,
        "metric": 0,
        "nexthops": ["blackhole"],
    }
    assert routes["10.0.12.0/31"]["nexthops"] == ["@eth1"]
    assert routes["10.255.0.2/32"]["nexthops"] == ["10.0.12.1@eth1", "10.0.13.1@eth2"]


def test_bgp_summary_normalisation_drops_counters_that_always_move():
    data = {
        "ipv4Unicast": {
            "as": 65001,
            "peers": {
                "10.0.12.1": {
                    "remoteAs": 65002,
                    "localAs": 65001,
                    "state": "Established",
                    "pfxRcd": 1,
                    "pfxSnt": 2,
                    "msgRcvd": 6,
                    "peerUptimeMsec": 3000,
                }
            },
        }
    }
    assert bgp_summary_normalize(data) == {
        "10.0.12.1": {
            "state": "Established",
            "remote_as": 65002,
            "local_as": 65001,
            "pfx_rcd": 1,
            "pfx_snt": 2,
        }
    }
    assert bgp_summary_normalize({}) == {}


def test_frr_device_outside_the_egress_policy_is_refused_before_connecting():
    with pytest.raises(ConnectorError, match="egress refused"):
        FrrSshConnector(DeviceSpec(name="edge", host="192.0.2.10", port=22)).open()
