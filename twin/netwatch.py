"""Routing-change notifications from inside a twin's namespaces (rtnetlink), no process per node.

`converge` used to read every router's FIB from /proc every 0.2 s to notice that routes moved.
The kernel can tell us instead: an rtnetlink socket subscribed to the route and address groups
receives a message for every route zebra installs or removes. A socket belongs to the network
namespace it was created in, so each one is opened by a short-lived thread that has entered the
node's namespace with setns(2) (per thread on Linux; the caller's namespace is never touched).
Python 3.11 has no os.setns, hence ctypes.

A message only wakes the waiter; whether the FIB really changed is still decided by comparing
the node's /proc/<holder>/net/route and ipv6_route text (a replace with identical attributes is
no change). A socket whose buffer overflowed (ENOBUFS: messages were lost) reports a change, so
a burst never goes unnoticed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
# rtnetlink multicast groups (linux/rtnetlink.h, legacy bitmask form for bind()).
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
NETNS_DIR = Path("/run/netns")
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def in_netns(netns: str, fn: Callable[[], T], name: str) -> T:
    """`fn()` run inside network namespace `netns`, in a short-lived thread of its own: setns
    moves only the calling thread, and this one ends right after, its namespace switch with it.
    A socket opened there stays in that namespace."""
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            with open(NETNS_DIR / netns) as fh:
                _setns(fh.fileno(), CLONE_NEWNET)
            box["result"] = fn()
        except OSError as exc:
            box["error"] = exc

    t = threading.Thread(target=worker, name=f"{name}-{netns}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def open_route_socket(netns: str) -> socket.socket:
    """A non-blocking rtnetlink socket subscribed to route/address/link changes in `netns`."""

    def opener() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, GROUPS))
        sock.setblocking(False)
        return sock

    return in_netns(netns, opener, "netwatch")


class RouteWatch:
    """One rtnetlink socket per node; `wait(timeout)` returns the nodes that saw a message."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self._socks: dict[int, tuple[str, socket.socket]] = {}
        try:
            for node, ns in namespaces.items():
                s = open_route_socket(ns)
                self._socks[s.fileno()] = (node, s)
        except OSError:
            self.close()
            raise
        self._poll = select.poll()
        for fd in self._socks:
            self._poll.register(fd, select.POLLIN)

    def wait(self, timeout: float) -> set[str]:
        """Block up to `timeout` s for routing messages; drain them; return the nodes concerned."""
        woke: set[str] = set()
        events = self._poll.poll(max(0, int(timeout * 1000)))
        for fd, _ in events:
            node, sock = self._socks[fd]
            woke.add(node)
            while True:
                try:
                    if not sock.recv(1 << 16):
                        break
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:  # overflow: messages lost, the node did change
                        continue
                    break
        return woke

    def close(self) -> None:
        for _, sock in self._socks.values():
            try:
                sock.close()
            except OSError:
                pass
        self._socks.clear()

    def __enter__(self) -> RouteWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
