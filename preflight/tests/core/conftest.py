"""Fixtures for the pipeline core tests: hand-built topologies, the bundled labs, and a
check that a real twin left nothing behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from twin.base import Endpoint, Link, Node, Topology

REPO = Path(__file__).resolve().parents[3]
LABS = REPO / "labs"

R1 = """frr defaults datacenter
hostname r1
ip prefix-list PL-IN seq 10 permit 10.255.0.0/24 le 32
route-map FROM-R2 permit 10
 match ip address prefix-list PL-IN
exit
interface eth1
 ip address 10.0.12.0/31
exit
interface lo
 ip address 10.255.0.1/32
exit
router bgp 65001
 neighbor 10.0.12.1 remote-as 65002
 address-family ipv4 unicast
  network 10.255.0.1/32
  neighbor 10.0.12.1 route-map FROM-R2 in
 exit-address-family
exit
"""
R2 = """frr defaults datacenter
hostname r2
interface eth1
 ip address 10.0.12.1/31
exit
interface lo
 ip address 10.255.0.2/32
exit
router bgp 65002
 neighbor 10.0.12.0 remote-as 65001
 address-family ipv4 unicast
  network 10.255.0.2/32
 exit-address-family
exit
"""


@pytest.fixture
def pair() -> Topology:
    """Two routers, one link, eBGP, a route-map on r1: built by hand from base.py's dataclasses."""
    return Topology(
        name="pair",
        nodes={
            "r1": Node("r1", "frr", frr_conf=R1, daemons=["zebra", "staticd", "bgpd"],
                       labels={"aegis.criticality": "high"}),
            "r2": Node("r2", "frr", frr_conf=R2, daemons=["zebra", "staticd", "bgpd"],
                       labels={"aegis.criticality": "low"}),
            "h1": Node("h1", "host"),
        },
        links=[Link(Endpoint("r1", "eth1"), Endpoint("r2", "eth1"))],
        source="/nonexistent/pair.clab.yml",
    )


@pytest.fixture(scope="session")
def triangle():
    from twin.topology import load_lab

    return load_lab(LABS / "triangle")


def real_twin_possible() -> str | None:
    """Why a real twin cannot run here, or None."""
    if os.geteuid() != 0:
        return "real twins need root"
    if not Path("/usr/lib/frr/zebra").exists() or shutil.which("vtysh") is None:
        return "FRR is not installed"
    return None


def twin_leftovers(prefix: str) -> list[str]:
    """Namespaces and run folders of one twin (by its own prefix) that still exist."""
    left = []
    netns = Path("/run/netns")
    if netns.is_dir():
        left += [p.name for p in netns.iterdir() if p.name.startswith(prefix)]
    run_root = Path(os.environ.get("AEGIS_TWIN_RUN_ROOT", "/run/aegis"))
    twin_id = prefix.removeprefix("aegis-").rstrip("-")
    if twin_id and (run_root / twin_id).exists():
        left.append(str(run_root / twin_id))
    return left
