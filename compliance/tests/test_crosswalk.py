"""The crosswalk rules: given a run's result, when mapped, then each control has the right state."""

from __future__ import annotations

import pytest

from compliance.catalogues import UnknownFramework, catalogues_load
from compliance.crosswalk import (
    NOT_APPLICABLE,
    NOT_SATISFIED,
    PENDING,
    SATISFIED,
    STATES,
    CrosswalkError,
    control_states,
    controls_for,
)
from compliance.tests.results import DELETE, clean_result, variant

ALL = list(catalogues_load())
BLOCKED = {"verdict": "blocked"}


def _state(rows: list[dict], framework: str, control: str, artifact: str) -> tuple[str, str]:
    hits = [
        r for r in rows if (r["framework"], r["control_id"], r["artifact"]) == (framework, control, artifact)
    ]
    assert len(hits) == 1, f"expected one row for {framework} {control} {artifact}, got {len(hits)}"
    return hits[0]["state"], hits[0]["why"]


# (case, result changes, approvals, framework, control, artifact, expected state, words in `why`)
RULE_TABLE = [
    ("twin converged on real FRR", {}, None, "nist-800-53r5", "CM-3(2)", "twin_test", SATISFIED, "8.4.4"),
    (
        "twin change never converged",
        {"twin.change_convergence_s": None, **BLOCKED},
        None,
        "nist-800-53r5",
        "CM-3(2)",
        "twin_test",
        NOT_SATISFIED,
        "did not converge after the change",
    ),
    (
        "twin baseline never converged",
        {"twin.baseline_convergence_s": None, **BLOCKED},
        None,
        "nist-800-53r5",
        "CM-4(1)",
        "twin_test",
        NOT_SATISFIED,
        "baseline",
    ),
    (
        "converge reason code",
        {"reasons": [{"code": "CHANGE_NOT_CONVERGED", "message": "r2 bgp Active"}], **BLOCKED},
        None,
        "nist-800-53r5",
        "CM-3(2)",
        "twin_test",
        NOT_SATISFIED,
        "r2 bgp Active",
    ),
    (
        "simulated twin is not a test environment",
        {"twin.tier": "simulated", "twin.backend": "simulator"},
        None,
        "nerc-cip-010-4",
        "R1.5.1",
        "twin_test",
        NOT_SATISFIED,
        "simulated",
    ),
    (
        "static error stops the twin",
        {
            "static_findings": [
                {
                    "device": "r1",
                    "line_no": 3,
                    "severity": "error",
                    "code": "FRR_SYNTAX",
                    "message": "Unknown command",
                }
            ],
            "twin": DELETE,
            "snapshots": DELETE,
            "diff": DELETE,
            **BLOCKED,
        },
        None,
        "nist-800-53r5",
        "CM-3(2)",
        "twin_test",
        NOT_SATISFIED,
        "static analysis blocked",
    ),
    (
        "static error itself",
        {
            "static_findings": [
                {
                    "device": "r1",
                    "line_no": 3,
                    "severity": "error",
                    "code": "FRR_SYNTAX",
                    "message": "Unknown command",
                }
            ],
            **BLOCKED,
        },
        None,
        "pci-dss-4.0.1",
        "1.2.1",
        "static_analysis",
        NOT_SATISFIED,
        "r1 line 3: Unknown command",
    ),
    ("static warnings only", {}, None, "iso-27001-2022", "A.8.29", "static_analysis", SATISFIED, "1 warning"),
    ("rollback verified", {}, None, "pci-dss-4.0.1", "6.5.1", "rollback", SATISFIED, "3 inverse line(s)"),
    (
        "rollback not verified",
        {"rollback.verified": False, "rollback.mismatch": ["r1 route 10.42.0.0/24 left"], **BLOCKED},
        None,
        "dora",
        "RTS-17(1)(e)",
        "rollback",
        NOT_SATISFIED,
        "r1 route 10.42.0.0/24 left",
    ),
    (
        "simulated rollback is not evidence",
        {"twin.tier": "simulated", "twin.backend": "simulator"},
        None,
        "nist-800-53r5",
        "CM-2(3)",
        "rollback",
        NOT_SATISFIED,
        "simulated evidence never counts",
    ),
    (
        "egress record names how the twin is isolated",
        {"egress.twin_isolation": "twin namespaces have no link or route to the host network"},
        None,
        "nist-800-53r5",
        "SC-7",
        "egress_record",
        SATISFIED,
        "no link or route to the host network.",
    ),
    (
        "expected effects declared",
        {},
        None,
        "dora",
        "RTS-17(1)(d)",
        "expected_outcome",
        SATISFIED,
        "(2 prefix/session item(s))",
    ),
    (
        "expected effects not declared",
        {"change.expect": {"prefixes_added": {}, "sessions_removed": [], "declared": False}},
        None,
        "dora",
        "RTS-17(1)(d)",
        "expected_outcome",
        NOT_SATISFIED,
        "does not declare its expected effects",
    ),
    (
        "declared effect did not happen",
        {"diff.expected_missing": ["r2: prefix added 10.42.0.0/24 was declared but not seen"]},
        None,
        "nist-800-53r5",
        "CM-3(2)",
        "twin_verification",
        NOT_SATISFIED,
        "r2: prefix added 10.42.0.0/24 was declared but not seen",
    ),
    (
        "lab config lines refused at load are disclosed",
        {"twin.load_errors": [{"node": "r2", "line": "bgp bestpath foo", "message": "Unknown command"}]},
        None,
        "nerc-cip-010-4",
        "R1.5.1",
        "twin_test",
        SATISFIED,
        "FRR refused 1 line(s) of the lab's own configs",
    ),
    (
        "rollback absent",
        {"rollback": DELETE, **BLOCKED},
        None,
        "nist-800-53r5",
        "CM-2(3)",
        "rollback",
        NOT_SATISFIED,
        "not rehearsed",
    ),
    (
        "needs_approval, none yet",
        {},
        None,
        "nist-800-53r5",
        "AC-5",
        "approval",
        PENDING,
        "awaiting 1 more approval(s)",
    ),
    (
        "ship_ready is pre-authorized by policy",
        {"verdict": "ship_ready", "risk.tier": "low"},
        [],
        "pci-dss-4.0.1",
        "6.5.1",
        "approval",
        SATISFIED,
        "pre-authorizes as a standard change",
    ),
    (
        "high risk: one approval of two",
        {"risk.tier": "high"},
        [{"approver": "alice", "decision": "approve"}, {"approver": "alice", "decision": "approve"}],
        "nist-800-53r5",
        "CM-3",
        "approval",
        PENDING,
        "awaiting 1 more approval(s) by approvers other than the operator (1 of 2 required for a high-risk",
    ),
    (
        "high risk: two distinct approvers",
        {"risk.tier": "high"},
        [{"approver": "alice", "decision": "approve"}, {"approver": "bob", "decision": "approve"}],
        "nist-800-53r5",
        "CM-3",
        "approval",
        SATISFIED,
        "approved by alice, bob (2 of 2 required",
    ),
    (
        "approval that names the bundle digest",
        {},
        [{"approver": "alice", "decision": "approve", "bundle_digest": "sha256:" + "ab" * 32}],
        "nist-800-53r5",
        "AU-10",
        "approval",
        SATISFIED,
        "each approval names the bundle digest",
    ),
    (
        "approved by another person",
        {},
        [{"approver": "alice", "decision": "approved", "at": "2026-11-25T20:00:00Z"}],
        "dora",
        "RTS-17(1)(b)",
        "approval",
        SATISFIED,
        "alice",
    ),
    (
        "approved by the operator",
        {},
        [{"approver": "olga", "decision": "approved"}],
        "iso-27001-2022",
        "A.5.3",
        "approval",
        NOT_SATISFIED,
        "separation of duties",
    ),
    (
        "rejected",
        {},
        [{"approver": "alice", "decision": "approved"}, {"approver": "bob", "decision": "rejected"}],
        "nist-800-53r5",
        "CM-3",
        "approval",
        NOT_SATISFIED,
        "rejected by bob",
    ),
    (
        "approvals read from the result",
        {"approvals": [{"approver": "alice", "decision": "approve"}]},
        None,
        "soc2-cc8.1",
        "CC8.1",
        "approval",
        SATISFIED,
        "alice",
    ),
    (
        "blocked: nothing to approve",
        BLOCKED,
        None,
        "nerc-cip-010-4",
        "R1.2",
        "approval",
        NOT_APPLICABLE,
        "blocked",
    ),
    (
        "undeclared loss in the twin",
        {
            "diff.undeclared": [
                {
                    "kind": "route_removed",
                    "node": "r3",
                    "loss": True,
                    "message": "r3 lost route 10.255.0.1/32",
                }
            ],
            **BLOCKED,
        },
        None,
        "nerc-cip-010-4",
        "R1.5.2",
        "twin_verification",
        NOT_SATISFIED,
        "r3 lost route 10.255.0.1/32",
    ),
    (
        "undeclared gain only raises the risk",
        {},
        None,
        "nerc-cip-010-4",
        "R1.5.2",
        "twin_verification",
        SATISFIED,
        "1 undeclared gain(s)",
    ),
    (
        "apply rejected in the twin",
        {"reasons": [{"code": "APPLY_REJECTED", "message": "r1 refused `foo`"}], **BLOCKED},
        None,
        "nist-800-53r5",
        "CM-3(2)",
        "twin_test",
        NOT_SATISFIED,
        "APPLY_REJECTED",
    ),
    (
        "rollback did not settle",
        {"reasons": [{"code": "ROLLBACK_NOT_CONVERGED", "message": "not within 120 s"}], **BLOCKED},
        None,
        "pci-dss-4.0.1",
        "6.5.1",
        "rollback",
        NOT_SATISFIED,
        "not within 120 s",
    ),
    (
        "invariant violated",
        {"invariants": [{"kind": "must_reach", "ok": False, "detail": "r2 cannot reach r3"}], **BLOCKED},
        None,
        "nist-800-53r5",
        "SA-11",
        "twin_verification",
        NOT_SATISFIED,
        "r2 cannot reach r3",
    ),
    (
        "no invariants declared",
        {"invariants": []},
        None,
        "nist-800-53r5",
        "SA-11",
        "twin_verification",
        SATISFIED,
        "declares no invariants",
    ),
    (
        "twin-vs-production statement present",
        {},
        None,
        "nerc-cip-010-4",
        "R1.5.2",
        "twin_vs_production",
        SATISFIED,
        "Linux kernel",
    ),
    (
        "twin-vs-production statement missing",
        {"twin.differences_from_production": []},
        None,
        "nerc-cip-010-4",
        "R1.5.2",
        "twin_vs_production",
        NOT_SATISFIED,
        "does not state",
    ),
    ("no LLM", {}, None, "nist-800-53r5", "SR-4", "llm_provenance", NOT_APPLICABLE, "source: file"),
    (
        "LLM with full provenance",
        {
            "change.source": "llm",
            "llm": {
                "endpoint": "http://127.0.0.1:8080",
                "model": "smollm2",
                "weights_sha256": "f" * 64,
                "prompt": "p",
                "raw": "{}",
            },
        },
        None,
        "nist-800-53r5",
        "SR-4",
        "llm_provenance",
        SATISFIED,
        "smollm2",
    ),
    (
        "LLM without weights digest",
        {
            "change.source": "llm",
            "llm": {"endpoint": "http://127.0.0.1:8080", "model": "m", "prompt": "p", "raw": "{}"},
        },
        None,
        "soc2-cc8.1",
        "CC8.1",
        "llm_provenance",
        NOT_SATISFIED,
        "weights_sha256",
    ),
    ("egress held", {}, None, "nist-800-53r5", "SC-7", "egress_record", SATISFIED, "none outside"),
    (
        "egress to a public address",
        {"egress.contacted": [{"host": "api.example.com", "address": "203.0.113.7"}]},
        None,
        "iso-27001-2022",
        "A.8.20",
        "egress_record",
        NOT_SATISFIED,
        "203.0.113.7",
    ),
    (
        "egress refusal is the policy holding",
        {"egress.contacted": [{"address": "203.0.113.7", "refused": True}]},
        None,
        "cis-v8.1",
        "12.2",
        "egress_record",
        SATISFIED,
        "none outside",
    ),
    (
        "egress record missing",
        {"egress": DELETE},
        None,
        "nis2",
        "IR-6.7",
        "egress_record",
        NOT_SATISFIED,
        "no egress record",
    ),
    ("not sealed yet", {}, None, "pci-dss-4.0.1", "10.3.2", "seal", PENDING, "once the bundle is sealed"),
    (
        "sealed",
        {"seal": {"digest": "sha256:" + "cd" * 32, "ledger_index": 7}},
        None,
        "hipaa",
        "164.312(c)(2)",
        "seal",
        SATISFIED,
        "ledger leaf 7",
    ),
    (
        "post-implementation is never shown by a twin",
        {},
        None,
        "nist-800-53r5",
        "CM-4(2)",
        "post_implementation",
        PENDING,
        "read-back",
    ),
    (
        "blocked change is not implemented",
        BLOCKED,
        None,
        "pci-dss-4.0.1",
        "6.5.2",
        "post_implementation",
        NOT_APPLICABLE,
        "blocked",
    ),
    (
        "change without description",
        {"change.description": ""},
        None,
        "pci-dss-4.0.1",
        "6.5.1",
        "change_record",
        NOT_SATISFIED,
        "no description",
    ),
    (
        "impact analysed",
        {},
        None,
        "nerc-cip-010-4",
        "R1.4.1",
        "impact_analysis",
        SATISFIED,
        "risk tier medium",
    ),
    (
        "impact not analysed when the twin did not run",
        {"diff": DELETE, **BLOCKED},
        None,
        "dora",
        "RTS-17(1)(h)",
        "impact_analysis",
        NOT_SATISFIED,
        "twin did not run",
    ),
    ("baseline recorded", {}, None, "nerc-cip-010-4", "R1.1", "baseline_and_diff", SATISFIED, "3 node(s)"),
]


@pytest.mark.parametrize(
    "changes,approvals,framework,control,artifact,expected,words",
    [case[1:] for case in RULE_TABLE],
    ids=[case[0] for case in RULE_TABLE],
)
def test_rule_table(changes, approvals, framework, control, artifact, expected, words):
    result = variant(**changes)
    rows = controls_for(result, [framework], approvals=approvals)
    state, why = _state(rows, framework, control, artifact)
    assert state == expected, why
    assert words in why


def test_rows_carry_the_contract_keys_and_the_judgement_marking():
    rows = controls_for(clean_result(), ALL)
    assert rows
    for row in rows:
        assert {"framework", "control_id", "title", "meaning", "artifact", "state", "why"} <= set(row)
        assert row["state"] in STATES
        assert row["mapping_basis"] == "judgement"  # no official crosswalk exists for these mappings
        assert row["text_marking"] in ("V", "S")
        assert row["why"].endswith(".")
    assert {r["framework"] for r in rows} == set(ALL)


def test_only_the_chosen_frameworks_in_the_order_given():
    rows = controls_for(clean_result(), ["pci-dss-4.0.1", "nist-800-53r5", "pci-dss-4.0.1"])
    frameworks = [r["framework"] for r in rows]
    assert set(frameworks) == {"pci-dss-4.0.1", "nist-800-53r5"}
    assert frameworks.index("nist-800-53r5") > frameworks.index("pci-dss-4.0.1")
    assert frameworks == sorted(frameworks, key=["pci-dss-4.0.1", "nist-800-53r5"].index)


def test_unknown_framework_names_the_known_ones():
    with pytest.raises(UnknownFramework) as err:
        controls_for(clean_result(), ["nist-800-53r4"])
    assert "nist-800-53r4" in str(err.value) and "nist-800-53r5" in str(err.value)


@pytest.mark.parametrize(
    "bad,words",
    [
        ([], "must be a JSON object"),
        ({"format": "other/v9", "verdict": "blocked"}, "unsupported result format"),
        ({"format": "aegis.preflight.result/v1"}, "no `verdict`"),
        ({"format": "aegis.preflight.result/v1", "verdict": "maybe"}, "not one of blocked"),
    ],
)
def test_bad_result_is_a_clear_error(bad, words):
    with pytest.raises(CrosswalkError, match=words.replace("(", r"\(")):
        controls_for(bad, ["nist-800-53r5"])


def test_site_setting_for_high_risk_approvers_is_honoured():
    result = variant(**{"risk.tier": "high"})
    one = [{"approver": "alice", "decision": "approve"}]
    assert (
        _state(controls_for(result, ["dora"], approvals=one), "dora", "RTS-17(1)(b)", "approval")[0]
        == PENDING
    )
    rows = controls_for(result, ["dora"], approvals=one, high_risk_approvers=1)
    assert _state(rows, "dora", "RTS-17(1)(b)", "approval")[0] == SATISFIED
    with pytest.raises(CrosswalkError, match="at least 1"):
        controls_for(result, ["dora"], high_risk_approvers=0)


def test_bad_approvals_are_a_clear_error():
    with pytest.raises(CrosswalkError, match="approvals must be a list"):
        controls_for(clean_result(), ["nist-800-53r5"], approvals=["alice"])


def test_sparse_blocked_result_maps_without_crashing():
    # A run blocked at precheck carries little more than the verdict and reasons.
    result = {
        "format": "aegis.preflight.result/v1",
        "verdict": "blocked",
        "reasons": [{"code": "GUARD", "message": "line 3 touches a denied command"}],
        "twin": None,
        "diff": None,
        "rollback": None,
        "static_findings": None,
    }
    rows = controls_for(result, ALL)
    states = {r["artifact"]: r["state"] for r in rows}
    assert states["twin_test"] == NOT_SATISFIED
    assert states["approval"] == NOT_APPLICABLE
    assert "line 3 touches a denied command" in next(r["why"] for r in rows if r["artifact"] == "twin_test")


def test_clean_needs_approval_run_has_nothing_not_satisfied():
    rows = controls_for(clean_result(), ALL)
    bad = [
        (r["framework"], r["control_id"], r["artifact"], r["why"])
        for r in rows
        if r["state"] == NOT_SATISFIED
    ]
    assert bad == []
    assert {r["state"] for r in rows} == {SATISFIED, PENDING, NOT_APPLICABLE}


@pytest.mark.parametrize(
    "states,expected",
    [
        ([SATISFIED, PENDING], PENDING),
        ([SATISFIED, NOT_SATISFIED, PENDING], NOT_SATISFIED),
        ([NOT_APPLICABLE, SATISFIED], SATISFIED),
        ([NOT_APPLICABLE], NOT_APPLICABLE),
    ],
)
def test_control_state_is_the_worst_of_its_artifacts(states, expected):
    rows = [
        {
            "framework": "f",
            "control_id": "C-1",
            "title": "t",
            "meaning": "m",
            "text_marking": "V",
            "source_note": "s",
            "oscal_id": "c-1",
            "artifact": f"a{i}",
            "state": s,
            "why": "w.",
        }
        for i, s in enumerate(states)
    ]
    (summary,) = control_states(rows)
    assert summary["state"] == expected
    assert len(summary["rows"]) == len(states)
