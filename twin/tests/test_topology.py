"""Topology loading: containerlab's format in, a validated Topology or a TopologyError that names
the file, line and field out. No privileges needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.base import TopologyError
from twin.topology import exec_refusal, load_lab

from .conftest import CORPUS, LABS

FRR_CONF = "frr version 8.4.4\nhostname {n}\n!\nrouter bgp 65001\n!\n"


def make_lab(tmp_path: Path, yml: str, nodes: tuple[str, ...] = ("r1", "r2"), name: str = "lab.clab.yml") -> Path:
    for n in nodes:
        (tmp_path / n).mkdir(exist_ok=True)
        (tmp_path / n / "frr.conf").write_text(FRR_CONF.format(n=n))
        (tmp_path / n / "daemons").write_text("bgpd=yes\nospfd=no\n")
    (tmp_path / name).write_text(yml)
    return tmp_path


ROUTER = """    {n}:
      kind: linux
      binds: [{n}/frr.conf:/etc/frr/frr.conf, {n}/daemons:/etc/frr/daemons]
"""
GOOD = "name: t\ntopology:\n  nodes:\n" + ROUTER.format(n="r1") + ROUTER.format(n="r2") + \
    "  links:\n    - endpoints: [\"r1:eth1\", \"r2:eth1\"]\n"


def test_bundled_triangle_matches_the_contract():
    topo = load_lab(LABS / "triangle")
    assert topo.routers() == ["r1", "r2", "r3"]
    assert topo.nodes["r1"].labels["aegis.criticality"] == "high"
    assert topo.nodes["r1"].daemons == ["zebra", "staticd", "bgpd"]
    pairs = {frozenset({(ln.a.node, ln.a.iface), (ln.b.node, ln.b.iface)}) for ln in topo.links}
    assert frozenset({("r1", "eth1"), ("r2", "eth1")}) in pairs
    assert frozenset({("r3", "eth2"), ("r1", "eth2")}) in pairs
    assert "route-map FROM-R2 permit 10" in topo.nodes["r1"].frr_conf
    assert "192.0.2.0/24" in topo.nodes["r3"].frr_conf


@pytest.mark.parametrize("lab", ["triangle", "fabric", "campus", "bfd"])
def test_every_bundled_lab_loads_with_loopbacks_hostnames_and_criticality(lab):
    topo = load_lab(LABS / lab)
    assert topo.routers()
    for name in topo.routers():
        node = topo.nodes[name]
        assert f"hostname {name}\n" in node.frr_conf
        assert "interface lo\n ip address " in node.frr_conf and "/32" in node.frr_conf
        assert node.labels.get("aegis.criticality") in {"high", "medium", "low"}


def test_inheritance_node_over_group_over_kind_over_defaults(tmp_path):
    yml = """name: t
topology:
  defaults: {kind: linux, labels: {a: defaults, b: defaults, c: defaults, d: defaults}}
  kinds:
    linux: {image: "frr:kind", labels: {b: kind, c: kind, d: kind}}
  groups:
    g: {labels: {c: group, d: group}, binds: [r1/frr.conf:/etc/frr/frr.conf, r1/daemons:/etc/frr/daemons]}
  nodes:
    r1: {group: g, labels: {d: node}}
"""
    node = load_lab(make_lab(tmp_path, yml, ("r1",))).nodes["r1"]
    assert node.labels == {"a": "defaults", "b": "kind", "c": "group", "d": "node"}
    assert node.role == "frr" and node.image == "frr:kind"


def test_node_binds_override_group_binds_for_the_same_target(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "frr.conf").write_text("hostname other\n")
    yml = """name: t
topology:
  groups:
    g: {kind: linux, binds: [r1/frr.conf:/etc/frr/frr.conf]}
  nodes:
    r1: {group: g, binds: [other/frr.conf:/etc/frr/frr.conf]}
"""
    topo = load_lab(make_lab(tmp_path, yml, ("r1",)))
    assert topo.nodes["r1"].frr_conf == "hostname other\n"
    assert topo.nodes["r1"].config_path == "other/frr.conf"


def test_extended_links_bridges_and_hosts(tmp_path):
    yml = """name: t
topology:
  nodes:
""" + ROUTER.format(n="r1") + ROUTER.format(n="r2") + """    sw1: {kind: bridge}
    pc1:
      kind: linux
      image: wbitt/network-multitool
      exec: ["ip addr add 192.168.1.2/24 dev eth1", "apk add curl"]
  links:
    - type: veth
      mtu: 9000
      endpoints:
        - {node: r1, interface: eth1, mac: "02:00:00:00:00:01"}
        - {node: r2, interface: eth1}
    - endpoints: ["r1:eth2", "sw1:sw1-p0"]
    - endpoints: ["r2:eth2", "sw1:sw1-p1"]
    - endpoints: ["pc1:eth1", "sw1:sw1-p2"]
"""
    topo = load_lab(make_lab(tmp_path, yml))
    assert topo.nodes["sw1"].role == "bridge" and topo.nodes["pc1"].role == "host"
    assert topo.links[0].mtu == 9000 and topo.links[0].a.mac == "02:00:00:00:00:01"
    assert topo.nodes["pc1"].exec == ["ip addr add 192.168.1.2/24 dev eth1"]
    assert any("pc1" in w and "apk add curl" in w and "refused" in w for w in topo.warnings)


def test_env_substitution_with_default_and_from_environment(tmp_path):
    yml = GOOD.replace("name: t", "name: ${LABNAME:=fallback}").replace("r2:eth1", "r2:${IFACE:=eth9}")
    lab = make_lab(tmp_path, yml)
    assert load_lab(lab, env={}).name == "fallback"
    topo = load_lab(lab, env={"LABNAME": "given", "IFACE": "eth3"})
    assert topo.name == "given" and topo.links[0].b.iface == "eth3"


def test_ignored_fields_become_warnings(tmp_path):
    yml = "mgmt: {network: x}\n" + GOOD.replace(
        "      kind: linux\n", "      kind: linux\n      ports: [\"2222:22\"]\n      image: frr:10\n", 1)
    topo = load_lab(make_lab(tmp_path, yml))
    text = "\n".join(topo.warnings)
    assert "mgmt: ignored" in text
    assert "node r1: ports ignored" in text
    assert "image frr:10" in text


# (yaml text, expected words in the error) - every bad input gets its own clear error.
BAD = [
    (GOOD.replace("r2:eth1", "r9:eth1"), ["lab.clab.yml:11", "links[0].endpoints[1]", "unknown node 'r9'"]),
    (GOOD + "    - endpoints: [\"r1:eth1\", \"r2:eth2\"]\n",
     ["lab.clab.yml:12", "links[1].endpoints[0]", "already used by links[0]"]),
    (GOOD.replace("r1:eth1", "r1:averyveryverylongname"), ["not a valid Linux interface name"]),
    (GOOD.replace("r1:eth1", "r1:eth/1"), ["not a valid Linux interface name"]),
    (GOOD + "    - {type: vxlan, endpoint: {node: r1, interface: vx}, remote: 1.2.3.4, vni: 1}\n",
     ["links[1].type", "vxlan", "not supported"]),
    (GOOD + "    - {type: host, endpoint: {node: r1, interface: eth5, host-interface: r1e5}}\n",
     ["links[1].type", "host's network"]),
    (GOOD.replace("kind: linux", "kind: nokia_srlinux", 1), ["nodes.r1.kind", "nokia_srlinux", "FRR only"]),
    (GOOD.replace("r1/frr.conf:/etc/frr/frr.conf", "../../etc/passwd:/etc/frr/frr.conf", 1),
     ["binds[0]", "outside the lab folder"]),
    (GOOD.replace("name: t", "name: ${UNSET_AEGIS_VAR}"), ["lab.clab.yml:1", "UNSET_AEGIS_VAR", ":=value"]),
    (GOOD.replace("name: t\n", ""), ["name", "required"]),
    (GOOD + "    - endpoints: [\"r1:eth3\"]\n", ["exactly two endpoints"]),
    ("name: t\ntopology:\n  nodes: {r1: {kind: linux}}\n  nodes: {}\n", ["lab.clab.yml:4", "duplicate key"]),
    ("name: t\ntopology: [1, 2\n", ["not valid YAML"]),
    ("name: t\ntopology:\n  nodes:\n    r1: !!python/object:os.system {}\n", ["not valid YAML"]),
    (GOOD.replace("    r2:\n", "    r2:\n      network-mode: host\n"), ["network-mode"]),
    (GOOD.replace("    r2:\n", "    r2:\n      flavour: x\n"), ["nodes.r2.flavour", "unknown node field"]),
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
     "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n", ["expands too far"]),
]


@pytest.mark.parametrize("yml,words", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_topologies_are_refused_with_a_clear_error(tmp_path, yml, words):
    lab = make_lab(tmp_path, yml)
    with pytest.raises(TopologyError) as err:
        load_lab(lab, env={})
    for word in words:
        assert word in str(err.value), str(err.value)


def test_missing_bind_source_names_the_file(tmp_path):
    lab = make_lab(tmp_path, GOOD)
    (lab / "r2" / "frr.conf").unlink()
    with pytest.raises(TopologyError, match=r"lab.clab.yml:\d+: topology.nodes.r2.binds\[0\].*does not exist"):
        load_lab(lab)


def test_symlink_escaping_the_lab_folder_is_refused(tmp_path):
    lab = make_lab(tmp_path / "lab", GOOD) if (tmp_path / "lab").mkdir() is None else None
    (lab / "r1" / "frr.conf").unlink()
    (tmp_path / "secret.conf").write_text("hostname x\n")
    (lab / "r1" / "frr.conf").symlink_to(tmp_path / "secret.conf")
    with pytest.raises(TopologyError, match="outside the lab folder"):
        load_lab(lab)


def test_size_limit(tmp_path):
    lab = make_lab(tmp_path, GOOD + "#" + "x" * 1_100_000 + "\n")
    with pytest.raises(TopologyError, match="the limit is"):
        load_lab(lab)


def test_folder_rules_gotmpl_none_and_several(tmp_path):
    (tmp_path / "lab.clab.gotmpl").write_text("name: {{ .x }}\n")
    with pytest.raises(TopologyError, match="go-template"):
        load_lab(tmp_path)
    with pytest.raises(TopologyError, match="go-template"):
        load_lab(tmp_path / "lab.clab.gotmpl")
    make_lab(tmp_path, GOOD, name="a.clab.yml")
    make_lab(tmp_path, GOOD, name="b.clab.yml")
    with pytest.raises(TopologyError, match="more than one topology file"):
        load_lab(tmp_path)
    with pytest.raises(TopologyError, match="no such lab"):
        load_lab(tmp_path / "nope")


def test_daemons_guessed_when_no_daemons_file(tmp_path):
    lab = make_lab(tmp_path, GOOD.replace(", r1/daemons:/etc/frr/daemons", ""))
    (lab / "r1" / "frr.conf").write_text("hostname r1\nrouter ospf\n!\nrouter bgp 1\n!\n")
    topo = load_lab(lab)
    assert topo.nodes["r1"].daemons == ["zebra", "staticd", "bgpd", "ospfd"]
    assert any("no daemons file" in w for w in topo.warnings)


@pytest.mark.parametrize("command,allowed", [
    ("ip addr add 10.0.0.1/24 dev eth1", True),
    ("ip link set eth1 up", True),
    ("sysctl -w net.ipv4.ip_forward=1", True),
    ("apk add curl", False),
    ("ip addr add 10.0.0.1/24 dev eth1; rm -rf /", False),
    ("ip netns exec other ip link", False),
    ("ip -n other link set lo down", False),
    ("ip link set eth1 netns 1", False),
    ("sysctl -w kernel.panic=1", False),
    ("sysctl -p /etc/sysctl.conf", False),
    ("bash -c 'ip link'", False),
])
def test_exec_filter(command, allowed):
    assert (exec_refusal(command) is None) is allowed


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
def test_every_corpus_case_loads():
    cases = sorted(d for d in CORPUS.iterdir() if d.is_dir())
    assert len(cases) >= 50
    for case in cases:
        topo = load_lab(case)
        assert topo.routers(), case.name


def test_bundled_fabric_is_the_generators_output_and_larger_fabrics_load(tmp_path):
    from twin.fabricgen import fabric_files, fabric_write, main

    for rel, text in fabric_files(2, 4).items():
        assert (LABS / "fabric" / rel).read_text() == text, rel
    topo = load_lab(fabric_write(tmp_path / "f", 4, 196, name="fab200"))
    assert len(topo.routers()) == 200 and len(topo.links) == 4 * 196
    assert len({n.frr_conf.split("router bgp ")[1].split()[0] for n in topo.nodes.values()}) == 197  # spines share
    assert main(["--spines", "0", "--leaves", "3", str(tmp_path / "g")]) == 2
