"""lab_record: what a settled twin shows becomes reviewable invariants in aegis.yml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from preflight.core.invariants import invariants_load
from preflight.core.record import lab_record, observed_invariants, record_merge
from twin.simulator import SimulatorBackend
from twin.topology import load_lab

from .conftest import real_twin_possible, twin_leftovers
from .examples import LABS

REPO = LABS.parent


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    dest = tmp_path / "triangle"
    shutil.copytree(LABS / "triangle", dest, ignore=shutil.ignore_patterns("changes"))
    return dest


def test_record_keeps_existing_entries_and_comments_and_adds_the_rest(lab: Path) -> None:
    before = (lab / "aegis.yml").read_text()
    out = lab_record(lab, SimulatorBackend(seed=1), run_id="rec-1", converge_timeout=60)
    text = (lab / "aegis.yml").read_text()
    assert text.startswith(before.rstrip("\n"))  # comments and order untouched, appended below
    assert "# recorded by `manage.py lab_record`" in text
    loaded = invariants_load(lab, load_lab(lab))
    assert len(loaded) == out["kept"] + len(out["added"])
    # r1's two sessions were already declared: not repeated; r2's and r3's are new.
    assert {"session_established": {"node": "r1", "peer": "10.0.12.1"}} not in out["added"]
    assert {"session_established": {"node": "r2", "peer": "10.0.23.1"}} in out["added"]
    assert out["counts"] == {"session_established": 4, "prefix_present": 7, "must_reach": 3}
    assert out["tier"] == "simulated"
    again = lab_record(lab, SimulatorBackend(seed=1), run_id="rec-2", converge_timeout=60)
    assert again["added"] == [] and (lab / "aegis.yml").read_text() == text


def test_record_writes_a_new_file_when_the_lab_has_none(lab: Path) -> None:
    (lab / "aegis.yml").unlink()
    snapshot = {"nodes": {"r1": {"bgp": {"fd00::2": {"state": "Established"}, "10.0.0.9": {"state": "Active"}},
                                 "routes": {"10.9.0.0/16": {"protocol": "ospf"}, "10.0.0.0/31": {"protocol": "connected"}}}},
                "reachability": {"pairs": {"r1->r2:10.255.0.2": True, "r1->r3:10.255.0.3": False}}}
    observed = observed_invariants(snapshot)
    assert observed == [{"session_established": {"node": "r1", "peer": "fd00::2"}},
                        {"prefix_present": {"node": "r1", "prefix": "10.9.0.0/16"}},
                        {"must_reach": {"from": "r1", "to": "10.255.0.2"}}]
    out = record_merge(lab, load_lab(lab), observed)
    data = yaml.safe_load((lab / "aegis.yml").read_text())
    assert data["invariants"][0] == {"session_established": {"node": "r1", "peer": "fd00::2"}}
    assert len(out["added"]) == 3 and out["kept"] == 0


def test_a_broken_aegis_yml_is_reported_and_left_alone(lab: Path) -> None:
    (lab / "aegis.yml").write_text("invariants:\n  - must_reach: {from: r9, to: 10.0.0.1}\n")
    proc = subprocess.run([sys.executable, "manage.py", "lab_record", str(lab), "--backend", "simulator"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "r9" in proc.stderr
    assert (lab / "aegis.yml").read_text() == "invariants:\n  - must_reach: {from: r9, to: 10.0.0.1}\n"


def test_command_says_what_it_added(lab: Path) -> None:
    proc = subprocess.run([sys.executable, "manage.py", "lab_record", str(lab), "--backend", "simulator"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "added 14 invariant(s) (3 must_reach, 7 prefix_present, 4 session_established); kept 8" in proc.stdout
    assert "+ session_established: node=r2, peer=10.0.23.1" in proc.stdout


@pytest.mark.twin
@pytest.mark.skipif(real_twin_possible() is not None, reason=str(real_twin_possible()))
def test_record_on_a_real_twin_writes_what_real_frr_shows_and_leaves_nothing(lab: Path) -> None:
    from twin import get_backend

    seen: set[str] = set()

    def progress(step: str, status: str, message: str, data: dict) -> None:
        if step == "spawn" and isinstance(data.get("twin_id"), str):
            seen.add(f"aegis-{data['twin_id']}-")

    out = lab_record(lab, get_backend("netns"), run_id="rec-real", converge_timeout=120, progress=progress)
    assert out["tier"] == "real"
    assert {"session_established": {"node": "r3", "peer": "10.0.23.0"}} in out["added"]
    assert {"prefix_present": {"node": "r2", "prefix": "10.255.0.3/32"}} in out["added"]
    assert {"must_reach": {"from": "r2", "to": "10.255.0.1"}} in out["added"]
    # every recorded invariant holds on the lab it was recorded from: a second record adds nothing
    assert lab_record(lab, get_backend("netns"), run_id="rec-real-2", converge_timeout=120, progress=progress)["added"] == []
    assert len(seen) == 2 and all(twin_leftovers(p) == [] for p in seen)
