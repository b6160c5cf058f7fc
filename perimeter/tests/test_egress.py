"""The egress policy: nothing outside the allowed networks is ever connected to.

"No connection attempt" is proven with a Python audit hook on `socket.connect` (every
connect of a Python socket raises that audit event), with a positive control showing the
hook does see a real connect. Names that resolve to public addresses are resolved for real
by glibc from an /etc/hosts bind-mounted in a private mount namespace (no DNS server is
reachable here, and the machine's own /etc/hosts is left alone).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from perimeter.egress import (
    EgressRefused,
    egress_check,
    egress_client,
    egress_record,
    egress_scope,
    parse_allow_list,
)

REPO = Path(__file__).resolve().parents[2]
PUBLIC = "93.184.216.34"  # a public address; never actually contacted
PRIVATE_ONLY = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]

# Audit hooks cannot be removed, so one hook is installed once and records only while armed.
_connects: list[object] = []
_armed = threading.Event()


def _audit(event: str, args: tuple) -> None:
    if _armed.is_set() and event == "socket.connect":
        _connects.append(args[1])


sys.addaudithook(_audit)


@contextmanager
def watch_connects() -> Iterator[list[object]]:
    _connects.clear()
    _armed.set()
    try:
        yield _connects
    finally:
        _armed.clear()


def test_the_connect_watcher_sees_a_real_connect():
    # given a listening socket, when we connect to it, then the audit hook records the address
    server = socket.create_server(("127.0.0.1", 0))
    try:
        with watch_connects() as seen:
            socket.create_connection(server.getsockname(), timeout=2).close()
        assert server.getsockname() in seen
    finally:
        server.close()


def test_a_public_address_is_refused_before_any_socket_connects():
    # given the default policy, when an httpx request to a public address is made through the egress client
    with egress_scope(), watch_connects() as seen:
        with pytest.raises(EgressRefused) as refused, egress_client("llm", allow=PRIVATE_ONLY) as client:
            client.post(f"http://{PUBLIC}:8000/v1/chat/completions", json={})
        record = egress_record(allow=PRIVATE_ONLY)
    # then it is refused, with a message that says what to do, and nothing connected
    assert seen == []
    assert PUBLIC in str(refused.value) and "outside the allowed networks" in str(refused.value)
    assert "AEGIS_EGRESS_ALLOW" in str(refused.value)
    assert record["contacted"] == []
    assert record["refused"][0]["host"] == PUBLIC and record["refused"][0]["purpose"] == "llm"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.31.255.1", True),
        ("172.32.0.1", False),  # just outside 172.16.0.0/12
        ("192.168.1.1", True),
        ("8.8.8.8", False),
        ("::1", True),
        ("[::1]", True),
        ("fd00::1", True),
        ("2001:db8::1", False),
        ("169.254.169.254", False),  # the cloud metadata address is not private-range
    ],
)
def test_policy_table(host, allowed):
    if allowed:
        assert egress_check(host, 443, "test", allow=PRIVATE_ONLY) == host.strip("[]")
    else:
        with pytest.raises(EgressRefused):
            egress_check(host, 443, "test", allow=PRIVATE_ONLY)


def test_a_name_that_does_not_resolve_is_refused_with_the_reason():
    with pytest.raises(EgressRefused, match="does not resolve"):
        egress_check("no-such-host.invalid", 443, "llm", allow=PRIVATE_ONLY)


def test_bad_allow_list_entry_names_the_entry():
    with pytest.raises(
        ValueError, match="'10.0.0.0/33'.*AEGIS_EGRESS_ALLOW|AEGIS_EGRESS_ALLOW.*'10.0.0.0/33'"
    ):
        parse_allow_list(["127.0.0.0/8", "10.0.0.0/33"])


def test_policy_comes_from_django_settings(settings):
    # given a site that allows only loopback, when 10.x is checked, then it is refused
    settings.AEGIS_EGRESS_ALLOW = ["127.0.0.0/8"]
    with pytest.raises(EgressRefused):
        egress_check("10.0.0.5", 8000, "twin-agent")
    assert egress_record()["policy"] == ["127.0.0.0/8"]


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_allowed_request_connects_to_the_checked_address_and_is_recorded():
    # given a local HTTP server, when it is asked by name through the egress client
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        with egress_scope(), watch_connects() as seen:
            with egress_client("twin-agent", allow=["127.0.0.0/8"]) as client:
                answer = client.get(f"http://localhost:{port}/").json()
            record = egress_record(allow=["127.0.0.0/8"])
    finally:
        server.shutdown()
        server.server_close()
    # then the connection went to the address the policy approved, with the original Host header
    assert ("127.0.0.1", port) in seen
    assert answer["host"] == f"localhost:{port}"
    assert record["contacted"] == [
        {
            "host": "localhost",
            "port": port,
            "address": "127.0.0.1",
            "purpose": "twin-agent",
            "first_at": record["contacted"][0]["first_at"],
        }
    ]
    # and a scope holds only its own destinations
    with egress_scope():
        assert egress_record(allow=["127.0.0.0/8"])["contacted"] == []


def test_public_llm_url_is_refused_before_anything_runs(settings):
    # given AEGIS_LLM_URL pointing outside the perimeter
    from preflight.llm.config import llm_config_from_settings
    from preflight.llm.propose import propose_change
    from twin.topology import load_lab

    settings.AEGIS_LLM_URL = f"http://{PUBLIC}:8000/v1"
    topology = load_lab(REPO / "labs" / "triangle")
    # when a proposal is asked for, then it is refused with a clear message and nothing connected
    with watch_connects() as seen, pytest.raises(EgressRefused, match="outside the allowed networks"):
        propose_change("advertise 10.42.0.0/24 from r3", topology, config=llm_config_from_settings(settings))
    assert seen == []


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="needs root and unshare (private mount namespace)",
)

_RESOLVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.addaudithook(lambda e, a: print("CONNECT", a, file=sys.stderr) if e == "socket.connect" else None)
    from perimeter.egress import EgressRefused, egress_check
    out = {}
    for name in sys.argv[1:]:
        try:
            out[name] = {"allowed": egress_check(name, 443, "llm")}
        except EgressRefused as exc:
            out[name] = {"refused": exc.reason}
    print(json.dumps(out))
    """
)


@needs_root
def test_names_resolving_to_public_addresses_are_refused(tmp_path):
    # given names resolved for real by glibc from a private /etc/hosts
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n"
        f"{PUBLIC} llm.vendor-cloud.test\n"
        "10.20.30.40 llm.inside.test\n"
        f"10.20.30.41 mixed.test\n{PUBLIC} mixed.test\n"
    )
    script = tmp_path / "resolve.py"
    script.write_text(_RESOLVE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "AEGIS_EGRESS_ALLOW": ",".join(PRIVATE_ONLY)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    names = ["llm.vendor-cloud.test", "llm.inside.test", "mixed.test"]
    # when each is checked inside a private mount namespace
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount --bind "{hosts}" /etc/hosts && exec "{sys.executable}" "{script}" "$@"', "sh", *names],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # then the public one and the mixed one are refused, the private one allowed, and nothing connected
    assert PUBLIC in out["llm.vendor-cloud.test"]["refused"]
    assert "resolves to" in out["llm.vendor-cloud.test"]["refused"]
    assert out["llm.inside.test"] == {"allowed": "10.20.30.40"}
    assert PUBLIC in out["mixed.test"]["refused"]
    assert "CONNECT" not in proc.stderr


# --- the twin's namespaces have no way to the host network -----------------------------------


def _host_addresses() -> list[str]:
    """The host's own global addresses and its default gateway: what a twin must not reach."""
    addrs = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"],
                                      capture_output=True, text=True, check=True).stdout)  # fmt: skip
    found = [a["local"] for link in addrs for a in link.get("addr_info", [])]
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "default"],
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    found += [r["gateway"] for r in routes if "gateway" in r]
    return sorted(set(found))


def _twin_netns_available() -> bool:
    try:
        from twin import get_backend

        get_backend("netns")
    except Exception:
        return False
    return shutil.which("zebra") is not None or Path("/usr/lib/frr/zebra").exists()


needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2"
)


@pytest.mark.twin
@needs_netns
def test_twin_namespaces_have_no_route_to_the_host_network():
    host_addresses = _host_addresses()
    assert host_addresses, "the host has no global address to test against"
    if _twin_netns_available():
        _check_real_twin(host_addresses)
    else:
        _check_namespaces_made_like_the_twin(host_addresses)


def _check_real_twin(host_addresses: list[str]) -> None:
    # given the real triangle twin (FRR daemons in namespaces)
    from twin import get_backend
    from twin.topology import load_lab

    twin = get_backend("netns").spawn(load_lab(REPO / "labs" / "triangle"), f"egress-{uuid.uuid4().hex[:8]}")
    try:
        # positive control: the lab routes between its own loopbacks, so a failure below is isolation
        assert twin.converge(timeout=60).converged
        assert twin.reach("r1", "10.255.0.2")
        for node in twin.topology.routers():
            ns = twin.ns(node)
            # no default route, and no interface whose route leads to the host: every route is the lab's
            assert _ns(ns, "ip", "route", "show", "default").stdout.strip() == ""
            for address in host_addresses:
                route = _ns(ns, "ip", "-j", "route", "get", address, check=False)
                if route.returncode == 0:  # the lab itself may use the same range (triangle: 192.0.2.0/24)
                    dev = json.loads(route.stdout)[0].get("dev")
                    assert dev in _lab_ifaces(twin, node) or json.loads(route.stdout)[0].get("type") in (
                        "blackhole",
                        "unreachable",
                    )
                assert not twin.reach(node, address, source=""), (
                    f"{node} reached the host network at {address}"
                )
    finally:
        twin.teardown()


def _lab_ifaces(twin, node: str) -> set[str]:
    ifaces = {"lo"}
    for link in twin.topology.links:
        ifaces |= {e.iface for e in (link.a, link.b) if e.node == node}
    return ifaces


def _ns(ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=10, check=check
    )


def _check_namespaces_made_like_the_twin(host_addresses: list[str]) -> None:
    # given two node namespaces joined by a veth pair, the way the netns twin builds a link
    # (used only while the twin's backend is not in the tree)
    tag = f"aegis-egress{os.getpid()}-{uuid.uuid4().hex[:6]}"
    a, b = f"{tag}-r1", f"{tag}-r2"
    try:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            _ns(ns, "ip", "link", "set", "lo", "up")
        veth = uuid.uuid4().hex[:6]
        subprocess.run(["ip", "link", "add", f"ae{veth}a", "netns", a, "type", "veth",
                        "peer", "name", f"ae{veth}b", "netns", b], check=True)  # fmt: skip
        _ns(a, "ip", "addr", "add", "10.0.12.0/31", "dev", f"ae{veth}a")
        _ns(b, "ip", "addr", "add", "10.0.12.1/31", "dev", f"ae{veth}b")
        _ns(a, "ip", "link", "set", f"ae{veth}a", "up")
        _ns(b, "ip", "link", "set", f"ae{veth}b", "up")
        # positive control: the lab link works
        assert _ns(a, "ping", "-c", "1", "-W", "2", "10.0.12.1", check=False).returncode == 0
        for ns in (a, b):
            # then no route leads to the host's addresses and nothing answers from there
            assert "default" not in _ns(ns, "ip", "route", "show").stdout
            for address in host_addresses:
                route = _ns(ns, "ip", "route", "get", address, check=False)
                assert route.returncode != 0 and "unreachable" in route.stderr.lower()
                assert _ns(ns, "ping", "-c", "1", "-W", "1", address, check=False).returncode != 0
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert tag not in leftover
