"""The verdict-integrity scenario suite (issue 10): one scenario per failure class, each a YAML
file in this folder saying what it expects, why, and what the code before issue 10 said (`v1`).

Real FRR twins. One twin per lab is spawned for the whole module and shared by its scenarios
(each run's own rollback restores the baseline, and the next run checks it again), so the suite
costs one spawn per lab, not one per scenario.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight.core.change import change_from_parts
from preflight.core.pipeline import run_preflight
from preflight.tests.core.conftest import real_twin_possible, twin_leftovers
from twin.lend import LentBackend
from twin.topology import load_lab

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

pytestmark = [pytest.mark.twin, pytest.mark.slow,
              pytest.mark.skipif(real_twin_possible() is not None, reason=str(real_twin_possible()))]


def scenarios() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(HERE.glob("*.yml")):
        spec = yaml.safe_load(path.read_text())
        out.append((path.stem, spec))
    return out


def lab_dir(spec: dict[str, Any]) -> Path:
    local = HERE / spec["lab"]
    return local if local.exists() else REPO / spec["lab"]


_twins: dict[Path, Any] = {}


@pytest.fixture(scope="module")
def shared_twins():
    yield _twins
    prefixes = []
    for twin in _twins.values():
        prefixes.append(twin.prefix)
        twin.teardown()
    _twins.clear()
    for prefix in prefixes:
        assert twin_leftovers(prefix) == []


SCENARIOS = scenarios()


@pytest.mark.parametrize("name, spec", SCENARIOS, ids=[n for n, _ in SCENARIOS])
def test_scenario(name, spec, shared_twins):
    from twin.netns import NetnsBackend

    lab = lab_dir(spec)
    topology = load_lab(lab)
    if lab not in shared_twins:
        shared_twins[lab] = NetnsBackend().spawn(topology, None)
    c = spec["change"]
    change = change_from_parts(title=c["title"], description=c.get("description", ""), devices=c["devices"],
                               expect=c.get("expect"), source="file", topology=topology)
    result = run_preflight(lab, change, backend=LentBackend(shared_twins[lab]), topology=topology)
    want = spec["expect"]
    codes = [r["code"] for r in result["reasons"]]
    why = f"{name}: {result['verdict']} {result['reasons']}"
    assert result["verdict"] == want["verdict"], why
    assert set(want.get("reasons", [])) <= set(codes), why
    assert not set(want.get("absent_reasons", [])) & set(codes), why
    ledger = result["apply"]["ledger"]
    for node, lines in (want.get("ledger") or {}).items():
        got = {e["line_no"]: e["status"] for e in ledger["devices"][node]["lines"]}
        assert {n: got.get(n) for n in lines} == lines, ledger["devices"][node]
    for node, lines in (want.get("became") or {}).items():
        got = {e["line_no"]: e.get("became") for e in ledger["devices"][node]["lines"]}
        assert {n: got.get(n) for n in lines} == lines
    if "rejected_words" in want:
        assert any(want["rejected_words"] in r["message"] for r in result["apply"]["rejected"]), result["apply"]
    for node, peers in (want.get("sessions_lost") or {}).items():
        lost = {s["peer"] for s in result["diff"]["nodes"].get(node, {}).get("sessions_lost", [])}
        assert set(peers) <= lost, result["diff"]["nodes"]
    if "settle_timer" in want:
        assert result["settle"]["timer"] == want["settle_timer"], result["settle"]
    if "rollback_status" in want:
        rb = result["rollback"]
        assert rb["status"] in want["rollback_status"] and rb["restored_after_s"] is not None, rb
        assert ("ROLLBACK_SLOW" in codes) is (rb["status"] == "restored_after_retry")
    if "intent_prefixes_added" in want:
        assert result["intent"]["inferred"]["prefixes_added"]["*"] == want["intent_prefixes_added"]
    if "intent_sessions_removed" in want:
        assert result["intent"]["inferred"]["sessions_removed"] == want["intent_sessions_removed"]
    if "risk_score" in want:
        assert result["risk"]["score"] == want["risk_score"], result["risk"]
    if "policy_unreferenced" in want:
        assert result["risk"]["policy_objects_unreferenced"] == want["policy_unreferenced"]
    # Whatever the verdict, the shared twin must be back at its baseline for the next scenario.
    assert result["rollback"]["verified"] or "ROLLBACK_NOT_VERIFIED" in want.get("reasons", []), result["rollback"]
