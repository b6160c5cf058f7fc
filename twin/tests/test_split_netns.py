"""A lab split across two twin hosts, as on two machines: two network namespaces on this host, each
running `manage.py twin_agent`, joined by a veth "underlay". Real FRR, real VXLAN, real HTTP.

The fabric (2 spines x 4 leaves) is too large for either agent's budget, so it is split 3/3 with
four links as VXLAN tunnels; the same change must give the same verdict as on one host.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from twin import runstate
from twin.capacity import TWIN_BASE_MB
from twin.remote import RemoteBackend
from twin.split import SplitBackend, node_cost_mb
from twin.tests.agent_helpers import TOKEN
from twin.tests.conftest import requires_netns
from twin.topology import load_lab

REPO = Path(__file__).resolve().parents[2]
FABRIC = REPO / "labs" / "fabric"
pytestmark = [pytest.mark.twin, pytest.mark.slow, requires_netns]


def _ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    subprocess.run(argv, check=True, capture_output=True, text=True)


class TwoHosts:
    """Namespaces h-a and h-b (the "hosts"): underlay veth between them, a management veth to each."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.net = 16 + secrets.randbelow(200)  # 10.<net>.x.y: a private range unlikely to clash
        self.hosts = [f"t11-{tag}-a", f"t11-{tag}-b"]
        self.links = [f"t11m{tag}a", f"t11m{tag}b"]  # host-side management ends
        self.underlay = [f"10.{self.net}.0.1", f"10.{self.net}.0.2"]
        self.mgmt = [f"10.{self.net}.1.2", f"10.{self.net}.2.2"]
        for h in self.hosts:
            _ip("netns", "add", h)
            _ip("link", "set", "lo", "up", ns=h)
        _ip("link", "add", "u0", "netns", self.hosts[0], "type", "veth", "peer", "name", "u0", "netns", self.hosts[1])
        for i, h in enumerate(self.hosts):
            _ip("addr", "add", f"{self.underlay[i]}/30", "dev", "u0", ns=h)
            _ip("link", "set", "u0", "up", ns=h)
            _ip("link", "add", self.links[i], "type", "veth", "peer", "name", "m0", "netns", h)
            _ip("addr", "add", f"10.{self.net}.{i + 1}.1/30", "dev", self.links[i])
            _ip("link", "set", self.links[i], "up")
            _ip("addr", "add", f"{self.mgmt[i]}/30", "dev", "m0", ns=h)
            _ip("link", "set", "m0", "up", ns=h)

    def close(self) -> None:
        for h in self.hosts:  # deleting a namespace deletes its veth ends and their peers
            subprocess.run(["ip", "netns", "del", h], capture_output=True)
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)


class HostedAgent:
    """`manage.py twin_agent` inside one of the "hosts"; stopped by its PID."""

    def __init__(self, host: str, listen: str, underlay: str, token_file: Path, budget_mb: int) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", host, sys.executable, str(REPO / "manage.py"), "twin_agent",
             "--listen", f"{listen}:5757", "--token-file", str(token_file), "--underlay", underlay,
             "--budget-mb", str(budget_mb), "--lease-s", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        self.output: list[str] = []
        line = ""
        while self.proc.stdout and "listening on" not in line:
            line = self.proc.stdout.readline()
            self.output.append(line)
            if not line:
                self.proc.wait()
                raise AssertionError(f"agent in {host} did not start: {''.join(self.output)}")
        threading.Thread(target=lambda: [self.output.append(x) for x in self.proc.stdout or []], daemon=True).start()
        self.url = f"http://{listen}:5757"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(120)


@pytest.fixture
def two_agents(tmp_path: Path) -> Iterator[tuple[TwoHosts, list[HostedAgent]]]:
    token_file = tmp_path / "agent.token"
    token_file.write_text(TOKEN)
    fabric = load_lab(FABRIC)
    # Room for three of the six routers each: the fabric fits neither host alone.
    budget = TWIN_BASE_MB + 3 * max(node_cost_mb(fabric, n) for n in fabric.routers())
    hosts = TwoHosts()
    agents: list[HostedAgent] = []
    try:
        for i, h in enumerate(hosts.hosts):
            agents.append(HostedAgent(h, hosts.mgmt[i], hosts.underlay[i], token_file, budget))
        yield hosts, agents
    finally:
        for a in agents:
            a.stop()
        hosts.close()


def test_a_fabric_split_across_two_hosts_gives_the_same_verdict_as_one_host(two_agents):
    hosts, agents = two_agents
    fabric = load_lab(FABRIC)
    change = change_load((FABRIC / "changes" / "ship_ready.yml").read_text(), fabric)
    backend = SplitBackend([RemoteBackend(a.url, token=TOKEN) for a in agents])
    events: list[str] = []
    # One failure scenario (its link set down on the host that runs it) rather than all three: CI time.
    split = run_preflight(FABRIC, change, backend=backend, progress=lambda s, st, m, d: events.append(m), failures=1)
    local = run_preflight(FABRIC, change, backend="netns", failures=1)
    assert any("placement:" in m and "4 tunnel ends" in m for m in events), events
    assert split["verdict"] == local["verdict"] == "ship_ready", split["reasons"]
    assert [r["code"] for r in split["reasons"]] == [r["code"] for r in local["reasons"]]
    assert split["diff"] == local["diff"]
    # the failure scenario ran on both and found the same (names and what each lost)
    scen = [(r["name"], r["lost"]) for r in split["resilience"]["scenarios"]]
    assert len(scen) == 1 and scen == [(r["name"], r["lost"]) for r in local["resilience"]["scenarios"]]
    # the data plane too: the FIBs read on both hosts give the same forwarding changes
    assert "skipped" not in (split["dataplane"] or {}), split["dataplane"]
    assert split["dataplane"]["changed"] == local["dataplane"]["changed"]
    assert split["twin"]["backend"] == "http"
    # every twin of the agents is gone, and no VXLAN device is left in either "host"
    for a in agents:
        a.stop()
    for h in hosts.hosts:
        links = subprocess.run(["ip", "-n", h, "-o", "link"], capture_output=True, text=True).stdout
        assert "vxlan" not in links and " vx" not in links, links
    owners = {a.proc.pid for a in agents}
    left = [p for p in runstate.RUN_ROOT.iterdir()
            if (st := runstate.state_read(p)) is not None and st.get("owner_pid") in owners] \
        if runstate.RUN_ROOT.is_dir() else []
    assert not left
