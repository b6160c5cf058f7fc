"""Each bundled lab converges as a real twin; a broken lab reports its refused lines; a few
real-world corpus cases (../shared/corpus, skipped when absent) load and converge; LAN bridges
and plain hosts work. Every twin is checked gone afterwards, by its own prefix."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from twin.labcheck import lab_check
from twin.topology import load_lab

from .conftest import CORPUS, LABS, leftovers_of, requires_netns

pytestmark = [requires_netns, pytest.mark.twin]


def checked(lab, **kw):
    report = lab_check(lab, **kw)
    assert leftovers_of(report["twin_id"], []) == []
    return report


@pytest.mark.parametrize("lab,routers,sessions,adjacencies,bfd", [
    ("fabric", 6, 16, 0, 0),
    ("campus", 6, 2, 14, 0),
    ("bfd", 3, 6, 0, 6),
])
def test_bundled_lab_converges(lab, routers, sessions, adjacencies, bfd):
    r = checked(LABS / lab, timeout=90)
    assert r["converged"], r["still_moving"]
    assert r["nodes"] == routers
    assert r["bgp_sessions"] == {"established": sessions, "total": sessions}
    assert r["ospf_adjacencies"] == {"full": adjacencies, "total": adjacencies}
    assert r["bfd_peers"] == {"up": bfd, "total": bfd}
    assert r["rejected_lines"] == [] and r["down"] == []
    if lab == "fabric":  # spines share an AS (RFC 7938): only spine<->spine pings fail, by design
        assert sorted(r["reachability"]["failed"]) == ["spine1->spine2:10.254.0.2", "spine2->spine1:10.254.0.1"]
    else:
        assert r["reachability"]["ok"] == r["reachability"]["total"] > 0


def test_broken_lab_reports_refused_lines_and_still_converges(tmp_path):
    lab = tmp_path / "triangle"
    shutil.copytree(LABS / "triangle", lab, ignore=shutil.ignore_patterns("changes", "aegis.yml"))
    conf = lab / "r2" / "frr.conf"
    conf.write_text(conf.read_text().replace(
        "router bgp 65002\n", "router bgp 65002\n timers 3 10\n neighbor 10.0.12.0 frobnicate\n", 1))
    r = checked(lab, timeout=60)
    assert r["converged"]
    assert [(x["node"], x["line"], x["message"]) for x in r["rejected_lines"]] == [
        ("r2", "timers 3 10", "% Unknown command"), ("r2", "neighbor 10.0.12.0 frobnicate", "% Unknown command")]
    assert all(isinstance(x["line_no"], int) for x in r["rejected_lines"])
    assert r["bgp_sessions"]["established"] == 6


def test_hosts_and_lan_bridges(tmp_path, spawn_twin):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "frr.conf").write_text(
        "frr defaults datacenter\nhostname r1\n!\ninterface eth1\n ip address 192.168.50.1/24\nexit\n!\n"
        "interface lo\n ip address 10.9.9.1/32\nexit\n")
    (tmp_path / "r1" / "daemons").write_text("bgpd=no\n")
    (tmp_path / "lan.clab.yml").write_text("""name: lan
topology:
  nodes:
    r1: {kind: linux, binds: [r1/frr.conf:/etc/frr/frr.conf, r1/daemons:/etc/frr/daemons]}
    sw1: {kind: bridge}
    pc1:
      kind: linux
      exec: ["ip addr add 192.168.50.2/24 dev eth1", "ip route add default via 192.168.50.1", "touch /tmp/x"]
    pc2:
      kind: linux
      exec: ["ip addr add 192.168.50.3/24 dev eth1"]
  links:
    - endpoints: ["r1:eth1", "sw1:p1"]
    - endpoints: ["pc1:eth1", "sw1:p2"]
    - endpoints: ["pc2:eth1", "sw1:p3"]
""")
    topo = load_lab(tmp_path)
    assert any("touch /tmp/x" in w for w in topo.warnings)
    twin = spawn_twin(topo)
    assert twin.reach("pc1", "10.9.9.1", source="")     # host -> router loopback, via the bridge
    assert twin.reach("pc2", "192.168.50.2", source="")  # host -> host across the bridge
    # the bridge lives in the run's own switch namespace, not in the host's
    assert subprocess.run(["ip", "link", "show", "sw1"], capture_output=True).returncode != 0
    out = subprocess.run(["ip", "-n", twin.switch_ns, "link", "show", "sw1"], capture_output=True, text=True)
    assert out.returncode == 0 and "UP" in out.stdout


CORPUS_CASES = [
    # (case, routers, sessions up, refused lines): a fast iBGP case with LAN stubs, and a
    # known-bad one whose stray `exit-address-family` FRR refuses
    ("frr-topotests__bgp_rr_ibgp", 3, 4, []),
    ("frr-topotests__bgp_aggregate_address_route_map", 2, 2, [("r2", 14, "exit-address-family")]),
]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
@pytest.mark.parametrize("case,routers,up,refused", CORPUS_CASES, ids=[c[0] for c in CORPUS_CASES])
def test_corpus_case(case, routers, up, refused):
    r = checked(CORPUS / case, timeout=90)
    assert r["converged"], r["still_moving"]
    assert r["nodes"] == routers
    assert r["bgp_sessions"] == {"established": up, "total": up}
    assert [(x["node"], x["line_no"], x["line"]) for x in r["rejected_lines"]] == refused
