"""twin/icmp.py: echo requests from inside a namespace, judged like `ping -c 2 -i 0.2 -W 1`.

One bare namespace (no FRR): an address of its own answers; an address with no route, or routed
into a blackhole, fails at once (the kernel refuses to send); an address routed out of an
interface where nobody answers fails after the wait. About 1.3 seconds."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from twin.icmp import _echo, _parse_reply, ping_many

from .conftest import requires_netns


def test_an_echo_request_and_its_reply_are_recognised():
    request = _echo(4, 0x1234, 7)
    # a reply is the request with type 0, behind an IPv4 header (raw IPv4 sockets see it)
    reply = b"\x45" + b"\0" * 19 + bytes([0]) + request[1:]
    assert _parse_reply(4, reply) == (0x1234, 7)
    assert _parse_reply(4, b"\x45" + b"\0" * 19 + request) is None  # a request is not a reply
    assert _parse_reply(6, bytes([129, 0, 0, 0]) + request[4:]) == (0x1234, 7)


@requires_netns
@pytest.mark.twin
def test_reply_no_route_and_blackhole_in_a_real_namespace():
    ns = f"aegis-icmptest-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "set", "lo", "up"], ["addr", "add", "10.77.0.1/32", "dev", "lo"],
                    ["route", "add", "blackhole", "10.78.0.0/24"], ["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                    ["link", "set", "d0", "up"], ["link", "set", "d1", "up"], ["route", "add", "10.80.0.0/24", "dev", "d0"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        got = ping_many(ns, ["10.77.0.1", "10.79.0.1", "10.78.0.1", "10.80.0.1"], ["10.77.0.1"])
        assert got == {"10.77.0.1": True, "10.79.0.1": False, "10.78.0.1": False, "10.80.0.1": False}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
