"""Echo requests from inside a twin's namespace, without a process per ping.

A snapshot pings every sampled loopback pair (up to 120 on large labs). One `ping` process per
pair costs a fork and exec each, and `ping -c 2 -i 0.2` waits for its second request even when
the first was answered at once: on a 10-router fabric the 90 pings of one snapshot took 1.4 s on
two busy cores. Here a thread enters the router's namespace (setns, as twin/netwatch.py does),
opens one raw ICMP socket per family and source address, and sends every echo request itself.

Same judgement as `ping -n -c 2 -i 0.2 -W 1 -I SRC ADDR`: a second request 0.2 s after the
first when no reply came yet, and a pair is reachable when an echo reply from ADDR with our
identifier and sequence arrives within 1 s of the last request. It only returns sooner when
every pair has been answered, or a request cannot even be sent (no route: `ping` gives up at
once too). ICMP errors (unreachable, TTL exceeded) are not replies.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import select
import socket
import struct
import time

from .netwatch import in_netns

ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}
TRIES = 2
INTERVAL_S = 0.2
WAIT_S = 1.0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo(version: int, ident: int, seq: int) -> bytes:
    payload = b"aegis-reach" + struct.pack("!d", time.time())
    header = struct.pack("!BBHHH", ECHO_REQUEST[version], 0, 0, ident, seq)
    if version == 6:  # the kernel fills in the ICMPv6 checksum (pseudo-header) for raw ICMPv6 sockets
        return header + payload
    return struct.pack("!BBHHH", ECHO_REQUEST[4], 0, _checksum(header + payload), ident, seq) + payload


def _parse_reply(version: int, packet: bytes) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply, else None. IPv4 raw sockets see the IP header."""
    if version == 4:
        if len(packet) < 20:
            return None
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < 8:
        return None
    kind, _code, _sum, ident, seq = struct.unpack("!BBHHH", packet[:8])
    return (ident, seq) if kind == ECHO_REPLY[version] else None


def ping_many(netns: str, addresses: list[str], sources: list[str], *, tries: int = TRIES,
              interval: float = INTERVAL_S, wait: float = WAIT_S) -> dict[str, bool]:
    """{address: replied} for echo requests sent from inside `netns`, each sourced from the first
    address in `sources` of its family (the router's loopback), as `ping -I` would."""
    return in_netns(netns, lambda: _ping_here(addresses, sources, tries, interval, wait), "icmp")


def _ping_here(addresses: list[str], sources: list[str], tries: int, interval: float, wait: float
               ) -> dict[str, bool]:
    targets = sorted(set(addresses))
    result = {a: False for a in targets}
    if not targets:
        return result
    socks: dict[int, socket.socket] = {}
    try:
        for version in sorted({ipaddress.ip_address(a).version for a in targets}):
            fam, proto = (socket.AF_INET, socket.IPPROTO_ICMP) if version == 4 else (socket.AF_INET6,
                                                                                      socket.IPPROTO_ICMPV6)
            s = socket.socket(fam, socket.SOCK_RAW, proto)
            src = next((x for x in sources if ipaddress.ip_address(x).version == version), None)
            if src is not None:
                s.bind((src, 0))
            s.setblocking(False)
            socks[version] = s
        ident = secrets.randbits(16)
        # One sequence number per (target, try): a reply names exactly the request it answers.
        seq_of: dict[int, str] = {}
        pending = set(targets)
        sent = 0
        last_send = time.monotonic()
        next_send = last_send
        poll = select.poll()
        by_fd = {s.fileno(): (v, s) for v, s in socks.items()}
        for fd in by_fd:
            poll.register(fd, select.POLLIN)
        while True:
            now = time.monotonic()
            if sent < tries and now >= next_send and pending:
                for a in sorted(pending):
                    version = ipaddress.ip_address(a).version
                    seq = len(seq_of) + 1
                    seq_of[seq] = a
                    try:
                        socks[version].sendto(_echo(version, ident, seq), (a, 0))
                    except OSError:
                        # No route from here (ENETUNREACH) or no way out: `ping` gives up at once
                        # too ("connect: Network is unreachable"); nothing can answer.
                        pending.discard(a)
                sent += 1
                last_send = now
                next_send = now + interval
            if not pending or (sent >= tries and now >= last_send + wait):
                break
            until = next_send if sent < tries else last_send + wait
            for fd, _ in poll.poll(max(1, int((until - time.monotonic()) * 1000))):
                version, s = by_fd[fd]
                while True:
                    try:
                        packet, peer = s.recvfrom(65535)
                    except BlockingIOError:
                        break
                    got = _parse_reply(version, packet)
                    if got is None or got[0] != ident:
                        continue
                    a = seq_of.get(got[1])
                    if a is not None and ipaddress.ip_address(peer[0]) == ipaddress.ip_address(a):
                        result[a] = True
                        pending.discard(a)
        return result
    finally:
        for s in socks.values():
            s.close()


def available() -> bool:
    """Raw ICMP sockets need root (CAP_NET_RAW)."""
    return os.geteuid() == 0
