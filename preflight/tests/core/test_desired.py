"""Desired state -> change: frr-reload's delta from the lab's baseline, guards before and after."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from preflight.core.change import ChangeError
from preflight.core.desired import change_from_desired, delta_text, desired_read
from preflight.core.gitrange import git_desired
from preflight.core.guards import GuardRejection
from twin.topology import load_lab

LAB = Path(__file__).resolve().parents[3] / "labs" / "triangle"
ANNOUNCE = (" network 192.0.2.0/24\n", " network 192.0.2.0/24\n  network 198.51.100.0/24\n")
STATIC = ("ip route 192.0.2.0/24 Null0\n", "ip route 192.0.2.0/24 Null0\nip route 198.51.100.0/24 Null0\n")


def _r3_announcing() -> str:
    text = (LAB / "r3" / "frr.conf").read_text()
    return text.replace(*ANNOUNCE).replace(*STATIC)


def test_delta_is_frr_reloads_lines_and_lands_in_devices() -> None:
    topology = load_lab(LAB)
    change = change_from_desired(topology, {"r3": _r3_announcing(), "r1": topology.nodes["r1"].frr_conf or ""})
    lines = change["devices"]["r3"].splitlines()
    assert "ip route 198.51.100.0/24 Null0" in lines
    assert lines[:2] == ["router bgp 65003", " address-family ipv4 unicast"]
    assert "  network 198.51.100.0/24" in lines
    assert "r1" not in change["devices"] and change["desired"]["unchanged"] == ["r1"]
    assert change["desired"]["method"] == "frr-reload" and len(change["desired"]["nodes"]["r3"]["sha256"]) == 64
    assert "lines to add:" in delta_text(change) and "r1: unchanged" in delta_text(change)


def test_removed_line_becomes_no_form_in_context() -> None:
    topology = load_lab(LAB)
    desired = (LAB / "r3" / "frr.conf").read_text().replace(" neighbor 10.0.23.0 description r2\n", "")
    change = change_from_desired(topology, {"r3": desired})
    assert change["desired"]["nodes"]["r3"]["delete"] == ["router bgp 65003", " no neighbor 10.0.23.0 description r2"]


def test_identical_desired_state_is_refused_with_reason() -> None:
    topology = load_lab(LAB)
    with pytest.raises(ChangeError, match="equal the lab's baseline"):
        change_from_desired(topology, {"r2": (LAB / "r2" / "frr.conf").read_text()})


@pytest.mark.parametrize("bad, match", [
    ("log file /etc/passwd\n", "log file"),
    ("do shell rm -rf /\n", "`do`"),
    ("ip route 10.9.9.0/24 Null0\x1b[2J\n", "control character"),
])
def test_hostile_desired_config_is_refused_before_parsing(bad: str, match: str) -> None:
    topology = load_lab(LAB)
    text = (LAB / "r3" / "frr.conf").read_text() + bad
    with pytest.raises(GuardRejection, match=match) as info:
        change_from_desired(topology, {"r3": text})
    assert info.value.device == "r3"


def test_lines_the_baseline_already_carries_are_not_refused() -> None:
    # A full frr.conf has `service integrated-vtysh-config` and `line vty` (denied in a change):
    # unchanged, they are neither refused nor entered.
    topology = load_lab(LAB)
    change = change_from_desired(topology, {"r3": _r3_announcing()})
    assert "service" not in change["devices"]["r3"] and "line vty" not in change["devices"]["r3"]


def test_unknown_router_is_refused() -> None:
    with pytest.raises(GuardRejection, match="not in lab"):
        change_from_desired(load_lab(LAB), {"r9": "hostname r9\n"})


def test_desired_read_takes_both_layouts(tmp_path: Path) -> None:
    topology = load_lab(LAB)
    (tmp_path / "r3").mkdir()
    (tmp_path / "r3" / "frr.conf").write_text("a")
    (tmp_path / "r2.conf").write_text("b")
    assert desired_read(tmp_path, topology) == {"r2": "b", "r3": "a"}
    with pytest.raises(ChangeError, match="no desired config"):
        desired_read(tmp_path / "r3", topology)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   check=True, capture_output=True)


def test_git_range_gives_baseline_at_a_and_changed_configs_at_b(tmp_path: Path) -> None:
    lab = tmp_path / "net" / "triangle"
    shutil.copytree(LAB, lab, ignore=shutil.ignore_patterns("changes"))
    _git(tmp_path / "net", "init", "-q")
    _git(tmp_path / "net", "add", ".")
    _git(tmp_path / "net", "commit", "-qm", "lab")
    (lab / "r3" / "frr.conf").write_text(_r3_announcing())
    _git(tmp_path / "net", "commit", "-qam", "announce")
    (lab / "r2" / "frr.conf").write_text("uncommitted edit\n")  # must not leak into A or B
    gd = git_desired(lab, "HEAD~1..HEAD")
    try:
        assert set(gd.desired) == {"r3"}
        assert gd.topology.nodes["r3"].frr_conf == (LAB / "r3" / "frr.conf").read_text()
        assert (gd.baseline_dir / "aegis.yml").is_file()
        change = change_from_desired(gd.topology, gd.desired, origin=gd.origin)
        assert "ip route 198.51.100.0/24 Null0" in change["devices"]["r3"]
        assert change["desired"]["origin"].startswith("git HEAD~1..HEAD")
    finally:
        gd.scratch.cleanup()


def test_git_range_refuses_a_topology_change(tmp_path: Path) -> None:
    lab = tmp_path / "triangle"
    shutil.copytree(LAB, lab, ignore=shutil.ignore_patterns("changes"))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "lab")
    clab = lab / "triangle.clab.yml"
    clab.write_text(_drop_first_link(clab.read_text()))
    _git(tmp_path, "commit", "-qam", "rewire")
    with pytest.raises(ChangeError, match="not a config change"):
        git_desired(lab, "HEAD~1..HEAD")
    with pytest.raises(ChangeError, match="REV_A..REV_B"):
        git_desired(lab, "HEAD")


def _drop_first_link(text: str) -> str:
    lines = text.splitlines(keepends=True)
    i = next(k for k, ln in enumerate(lines) if "endpoints" in ln)
    return "".join(lines[:i] + lines[i + 1:])
