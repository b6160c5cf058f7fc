"""The crosswalk and the OSCAL export on result documents the real pipeline produced, not on fixtures:
the rules must read the keys and reason codes the pipeline actually writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from compliance.catalogues import catalogues_load
from compliance.crosswalk import NOT_SATISFIED, PENDING, SATISFIED, controls_for
from compliance.oscal import assessment_results, oscal_errors
from compliance.tests.results import sealed_bundle

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "labs" / "triangle"
ALL = list(catalogues_load())
ANNOUNCE = "ip route 10.42.0.0/24 Null0\nrouter bgp 65001\n network 10.42.0.0/24\n"


def _change(devices: dict[str, str]) -> dict:
    from preflight.core.change import change_from_parts

    return change_from_parts(
        title="Announce 10.42.0.0/24 from r1",
        description="New customer range behind r1",
        devices=devices,
        expect=None,
        source="form",
    )


def _state(rows, framework, control, artifact):
    (row,) = [
        r for r in rows if (r["framework"], r["control_id"], r["artifact"]) == (framework, control, artifact)
    ]
    return row["state"], row["why"]


def test_simulated_run_is_never_evidence_of_testing():
    from preflight.core.pipeline import run_preflight
    from twin.simulator import SimulatorBackend

    # given a clean change run on the seeded simulator
    result = run_preflight(LAB, _change({"r1": ANNOUNCE}), backend=SimulatorBackend(seed=1))
    assert result["twin"]["tier"] == "simulated"
    # when mapped to every framework
    rows = controls_for(result, ALL)
    # then nothing the simulated twin produced counts as evidence: not the test, not the rollback rehearsal
    for control, artifact in [("CM-3(2)", "twin_test"), ("CM-2(3)", "rollback"), ("CM-4", "impact_analysis")]:
        state, why = _state(rows, "nist-800-53r5", control, artifact)
        assert state == NOT_SATISFIED and "simulated" in why, (control, artifact, why)
    # while what does not depend on the twin still does
    assert _state(rows, "nist-800-53r5", "CM-4", "static_analysis")[0] == SATISFIED
    assert _state(rows, "nerc-cip-010-4", "R1.5.2", "twin_vs_production")[0] == SATISFIED
    assert _state(rows, "nist-800-53r5", "SC-7", "egress_record")[0] == SATISFIED
    # and the export of the sealed bundle validates
    doc = assessment_results(sealed_bundle(result, rows, ALL), rows)
    assert oscal_errors(doc) == []


def test_static_error_blocks_and_the_crosswalk_says_why():
    from preflight.core.pipeline import run_preflight
    from twin.simulator import SimulatorBackend

    result = run_preflight(
        LAB, _change({"r1": "ip route 10.42.0.0/33 Null0\n"}), backend=SimulatorBackend(seed=1)
    )
    assert result["verdict"] == "blocked"
    rows = controls_for(result, ["pci-dss-4.0.1", "nist-800-53r5"])
    assert _state(rows, "pci-dss-4.0.1", "1.2.1", "static_analysis")[0] == NOT_SATISFIED
    assert _state(rows, "nist-800-53r5", "AC-5", "approval")[0] == "not_applicable"


def _netns_twin_available() -> bool:
    return (
        os.geteuid() == 0
        and shutil.which("ip") is not None
        and (shutil.which("zebra") is not None or Path("/usr/lib/frr/zebra").exists())
    )


@pytest.mark.twin
@pytest.mark.skipif(not _netns_twin_available(), reason="needs root, iproute2 and FRR")
def test_real_twin_run_maps_from_what_the_twin_actually_did():
    from preflight.core.pipeline import run_preflight

    run_id = f"compliance-{uuid.uuid4().hex[:8]}"
    try:
        # given the change run on the real FRR twin (the pipeline always tears it down)
        result = run_preflight(
            LAB, _change({"r1": ANNOUNCE}), backend="netns", run_id=run_id, converge_timeout=60
        )
    finally:
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert run_id not in left, f"twin namespaces left behind: {left}"
    assert result["twin"]["tier"] == "real", result["reasons"]
    codes = {r["code"] for r in result["reasons"]}
    # when mapped
    rows = controls_for(result, ALL, operator="olga")
    # then testing in a separate environment is satisfied exactly when the real twin converged
    state, why = _state(rows, "nist-800-53r5", "CM-3(2)", "twin_test")
    converged = not codes & {
        "SPAWN_FAILED",
        "BASELINE_NOT_CONVERGED",
        "APPLY_REJECTED",
        "CHANGE_NOT_CONVERGED",
    }
    assert state == (SATISFIED if converged else NOT_SATISFIED), why
    if converged:
        assert "real FRR 8." in why and f"{result['twin']['baseline_convergence_s']:.1f} s" in why
    # the rollback controls follow rollback.verified of this very run (a loaded machine can make it fail)
    state, why = _state(rows, "pci-dss-4.0.1", "6.5.1", "rollback")
    assert state == (SATISFIED if result["rollback"]["verified"] else NOT_SATISFIED), why
    # approval: not applicable when blocked; else pending, satisfied by another person, refused for the operator
    if result["verdict"] == "blocked":
        assert _state(rows, "dora", "RTS-17(1)(b)", "approval")[0] == "not_applicable"
    else:
        assert _state(rows, "dora", "RTS-17(1)(b)", "approval")[0] == PENDING

        def approval_state(approvals):
            rows = controls_for(result, ["dora"], operator="olga", approvals=approvals)
            return _state(rows, "dora", "RTS-17(1)(b)", "approval")[0]

        alice, bob = {"approver": "alice", "decision": "approve"}, {"approver": "bob", "decision": "approve"}
        # r1 is labelled criticality high, so this change is usually high risk: two approvers then
        high = result["risk"]["tier"] == "high"
        assert approval_state([alice]) == (PENDING if high else SATISFIED)
        assert approval_state([alice, bob]) == SATISFIED
        assert approval_state([{"approver": "olga", "decision": "approve"}]) == NOT_SATISFIED
    # and the OSCAL export of the sealed bundle validates against the official schema
    assert oscal_errors(assessment_results(sealed_bundle(result, rows, ALL), rows)) == []
