"""JUnit and Markdown outputs of a run: one test case per check, failures carry the reason."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from preflight.core.report import junit_xml, markdown_summary, report_cases
from twin.simulator import SimulatorBackend

from .examples import LABS

TRIANGLE = LABS / "triangle"


def _result(name: str) -> dict:
    from twin.topology import load_lab
    change = change_load((TRIANGLE / "changes" / f"{name}.yml").read_text(), load_lab(TRIANGLE))
    return run_preflight(TRIANGLE, change, backend=SimulatorBackend(seed=1))


@pytest.fixture(scope="module")
def blocked() -> dict:
    return _result("prefix_lost")


@pytest.fixture(scope="module")
def ship() -> dict:
    return _result("ship_ready")


def test_junit_has_a_case_per_check_and_the_failure_reason(blocked: dict) -> None:
    root = ET.fromstring(junit_xml(blocked, seal={"digest": "sha256:ab"}))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    names = {(c.get("classname"), c.get("name")) for c in cases}
    assert ("aegis.static", "static checks") in names
    assert ("aegis.rollback", "rollback restores the baseline") in names
    invariants = [c for c in cases if c.get("classname") == "aegis.invariant"]
    assert len(invariants) == len(blocked["invariants"]) >= 8
    failed = [c for c in cases if c.find("failure") is not None]
    assert failed and int(suite.get("failures")) == len(failed)
    assert any("10.255.0.2" in c.find("failure").get("message") for c in failed)
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["verdict"] == "blocked" and props["bundle_digest"] == "sha256:ab"


def test_a_clean_run_has_no_failure(ship: dict) -> None:
    assert ship["verdict"] in ("ship_ready", "needs_approval")
    assert not [c for c in report_cases(ship) if c[2]]
    assert 'failures="0"' in junit_xml(ship)


def test_markdown_has_verdict_reasons_effects_rollback_and_seal(blocked: dict) -> None:
    md = markdown_summary(blocked, seal={"digest": "sha256:feed", "ledger_index": 4}, bundle_url="https://ci/b.json")
    assert md.startswith("## AEGIS preflight: ⛔ `blocked`")
    assert "`INVARIANT_VIOLATED`" in md and "### Effects" in md and "| intended |" in md
    assert "### Rollback" in md and "network 10.255.0.2/32" in md.split("### Rollback")[1]
    assert "sealed `sha256:feed` (ledger index 4), [bundle](https://ci/b.json)" in md
    assert "**not sealed**" in markdown_summary(blocked, seal=None)


def test_markdown_cells_cannot_break_the_table(blocked: dict) -> None:
    hostile = dict(blocked)
    hostile["diff"] = dict(blocked["diff"], intended=[{"kind": "route", "node": "r1", "key": "k",
                                                       "message": "a | b\n<script>", "loss": False}])
    md = markdown_summary(hostile)
    assert "a \\| b &lt;script&gt;" in md


def test_resilience_scenarios_are_cases_and_lost_redundancy_fails(ship: dict) -> None:
    result = dict(ship, resilience={"scenarios": [
        {"name": "link_down r1:eth1", "lost": [], "declared": False, "before": {}, "after": {}},
        {"name": "node_down r2", "lost": ["r1 -> r3 (10.255.0.3)"], "declared": False, "before": {}, "after": {}},
        {"name": "node_down r3", "lost": ["r1: route 192.0.2.0/24"], "declared": True, "before": {}, "after": {}},
    ]})
    cases = {c[1]: c[2] for c in report_cases(result) if c[0] == "resilience"}
    assert cases == {"link_down r1:eth1": None, "node_down r2": "lost under node_down r2: r1 -> r3 (10.255.0.3)",
                     "node_down r3": None}
