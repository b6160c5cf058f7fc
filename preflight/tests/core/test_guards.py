"""Guards: every hostile line is refused with device and line named; ordinary config passes."""

from __future__ import annotations

import pytest

from preflight.core.guards import GuardRejection, precheck


def change(text: str, device: str = "r1") -> dict:
    return {"title": "t", "description": "", "devices": {device: text}, "expect": {}, "source": "api"}


HOSTILE = [
    ("start-shell", 1, "opens a shell"),
    ("start-shell bash", 1, "opens a shell"),
    ("router bgp 65001\n do show running-config", 2, "`do`"),
    ("do write memory", 1, "`do`"),
    ("write memory", 1, "`write`"),
    ("write file", 1, "`write`"),
    ("copy running-config startup-config", 1, "`copy`"),
    ("log file /etc/passwd", 1, "`log file`"),
    ("log syslog debugging", 1, "`log syslog`"),
    ("no log file", 1, "`no log file`"),
    ("line vty", 1, "`line`"),
    ("password zebra", 1, "`password`"),
    ("enable password zebra", 1, "`enable password`"),
    ("service password-encryption", 1, "`service`"),
    ("no service integrated-vtysh-config", 1, "`no service`"),
    ("username admin nopassword", 1, "`username`"),
    ("banner motd file /etc/shadow", 1, "`banner`"),
    ("dump bgp all /tmp/dump", 1, "`dump`"),
    ("rpki", 1, "`rpki`"),
    ("bmp targets T", 1, "`bmp`"),
    ("fpm address 192.0.2.1", 1, "`fpm`"),
    ("clear ip bgp *", 1, "`clear`"),
    ("show running-config", 1, "`show`"),
    ("configure terminal", 1, "`configure`"),
    ("terminal length 0", 1, "`terminal`"),
    ("ip route 10.9.0.0/16 Null0\nend\nclear ip bgp *", 2, "`end`"),
    ("quit", 1, "`quit`"),
    # leaving configuration mode with `exit` to smuggle a command after it
    ("exit\nip route 10.9.0.0/16 Null0", 1, "leaves configuration mode"),
    ("router bgp 65001\nexit\nexit\nip route 10.9.0.0/16 Null0", 3, "leaves configuration mode"),
    # a top-level command inside a block brings vtysh back to the top: the next exit leaves
    ("router bgp 65001\nip route 10.9.0.0/16 Null0\nexit", 3, "leaves configuration mode"),
    ("route-map X permit 10\n exit\nexit", 3, "leaves configuration mode"),
    ("exit-address-family now", 1, "takes no arguments"),
    # control characters and invisible format characters
    ("ip route 10.9.0.0/16 Null0\x1b[2J", 1, "U+001B"),
    ("description a\x00b", 1, "U+0000"),
    ("ip route 10.9.0.0/16 Null0\rclear ip bgp *", 1, "U+000D"),
    ("ip route 10.9.0.0/16 Null0 \u202e", 1, "U+202E"),
    ("ip route 10.9.0.0/16 Null0\u2028clear ip bgp *", 1, "U+2028"),
    ("router bgp 65001\n neighbor 10.0.12.1 description x | sh", 2, "output pipe"),
    ("route-map X permit 10\n match script foo", 2, "scripts"),
    ("ip route 10.9.0.0/16 Null0 " + "x" * 600, 1, "longer than 512"),
]


@pytest.mark.parametrize("text, line_no, fragment", HOSTILE)
def test_hostile_lines_are_refused_naming_device_and_line(pair, text, line_no, fragment):
    with pytest.raises(GuardRejection) as err:
        precheck(change(text), pair)
    assert err.value.device == "r1"
    assert err.value.line_no == line_no
    assert fragment in str(err.value)
    assert "device r1, line" in str(err.value)


ACCEPTED = [
    "ip route 10.42.0.0/24 Null0\nrouter bgp 65001\n address-family ipv4 unicast\n  network 10.42.0.0/24\n",
    "router bgp 65001\n address-family ipv4 unicast\n  network 10.42.0.0/24\n exit-address-family\nexit\n",
    "interface eth1\n description uplink\nexit\nroute-map RM permit 10\n match ip address prefix-list P\nexit\n",
    "bgp as-path access-list AP seq 5 permit ^(65001|65002)$\n",
    "! comment with start-shell in it\n# another comment\nip route 10.9.0.0/16 Null0\n",
    "router bgp 65001\n neighbor 10.0.12.1 description naïve unicode is fine\n",
    "debug bgp updates\nno ip route 10.9.0.0/16 Null0\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_ordinary_config_passes(pair, text):
    precheck(change(text), pair)


def test_unknown_device_is_refused_by_precheck_too(pair):
    # A change built by the API or the LLM may skip change_load: precheck checks again.
    with pytest.raises(GuardRejection, match="device 'r9' is not in lab"):
        precheck(change("ip route 10.9.0.0/16 Null0", device="r9"), pair)


def test_a_host_node_is_not_a_config_target(pair):
    with pytest.raises(GuardRejection, match="not an FRR router"):
        precheck(change("ip route 10.9.0.0/16 Null0", device="h1"), pair)
