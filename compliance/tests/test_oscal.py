"""OSCAL assessment-results export: given a sealed bundle, when exported, then it validates against
the official OSCAL schema and says the same thing as the crosswalk."""

from __future__ import annotations

import base64
import copy
import hashlib
import json

import pytest

from compliance.catalogues import catalogues_load
from compliance.crosswalk import controls_for
from compliance.oscal import (
    OSCAL_VERSION,
    SCHEMA_PATH,
    OscalError,
    assessment_results,
    oscal_check,
    oscal_errors,
)
from compliance.tests.results import clean_result, sealed_bundle, variant

ALL = list(catalogues_load())
SCHEMA_SHA256 = (
    "37f41f6813c78e6d2c272b27030e17e93d7f92fee519c72e7531574fa0ecbb05"  # OSCAL 1.2.3 release asset
)


def _export(result=None, frameworks=ALL, approvals=None):
    result = result or clean_result()
    rows = controls_for(result, frameworks, approvals=approvals, seal=True)
    bundle = sealed_bundle(result, rows, frameworks)
    return bundle, assessment_results(bundle, rows)


def _findings(doc, framework):
    (res,) = [r for r in doc["assessment-results"]["results"] if _prop(r, "framework") == framework]
    return {_prop(f, "control-id"): f for f in res.get("findings", [])}, res


def _prop(obj, name):
    return next(p["value"] for p in obj["props"] if p["name"] == name)


def test_vendored_schema_is_the_official_release_file():
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$id"] == f"http://csrc.nist.gov/ns/oscal/{OSCAL_VERSION}/oscal-ar-schema.json"


@pytest.mark.parametrize(
    "case,changes,approvals",
    [
        ("needs approval, pending", {}, None),
        ("approved", {}, [{"approver": "alice", "decision": "approved", "at": "2026-11-25T20:00:00Z"}]),
        ("blocked by rollback", {"verdict": "blocked", "rollback.verified": False}, None),
        (
            "llm proposed",
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
        ),
    ],
)
def test_export_validates_against_the_official_schema(case, changes, approvals):
    _, doc = _export(variant(**changes), approvals=approvals)
    assert oscal_errors(doc) == []
    ar = doc["assessment-results"]
    assert ar["metadata"]["oscal-version"] == OSCAL_VERSION
    assert len(ar["results"]) == len(ALL)


def test_back_matter_carries_the_bundle_sha256_and_evidence_points_to_it():
    bundle, doc = _export()
    resources = doc["assessment-results"]["back-matter"]["resources"]
    (res,) = [r for r in resources if any(p["name"] == "seal-digest" for p in r.get("props", []))]
    assert _prop(res, "seal-digest") == bundle["digest"]
    assert res["rlinks"][0]["hashes"] == [{"algorithm": "SHA-256", "value": bundle["digest"][7:]}]
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    assert hashlib.sha256(payload).hexdigest() == res["rlinks"][0]["hashes"][0]["value"]
    assert _prop(res, "ledger-index") == "7"
    for result in doc["assessment-results"]["results"]:
        for obs in result["observations"]:
            assert obs["relevant-evidence"][0]["href"] == f"#{res['uuid']}"
    assert doc["assessment-results"]["import-ap"]["href"].startswith("#")


def test_findings_carry_the_crosswalk_state():
    _, doc = _export(variant(**{"verdict": "blocked", "rollback.verified": False}))
    findings, result = _findings(doc, "nist-800-53r5")
    # rollback not verified -> CM-2(3) not satisfied, reason fail
    assert findings["CM-2(3)"]["target"]["status"] == {"state": "not-satisfied", "reason": "fail"}
    assert _prop(findings["CM-2(3)"], "aegis-state") == "not_satisfied"
    # twin converged on real FRR -> CM-4(1) satisfied
    assert findings["CM-4(1)"]["target"]["status"] == {"state": "satisfied", "reason": "pass"}
    assert findings["CM-4(1)"]["target"]["target-id"] == "cm-4.1_obj"
    # blocked: nothing to approve, no LLM -> no finding for AC-5 / SR-4 (OSCAL has no n/a), observation says why
    assert "AC-5" not in findings and "SR-4" not in findings
    approval_obs = [o for o in result["observations"] if _prop(o, "artifact") == "approval"]
    assert approval_obs and approval_obs[0]["description"].startswith("not applicable: the run is blocked")
    # every finding is marked as AEGIS's judgement
    assert {_prop(f, "mapping-basis") for f in findings.values()} == {"judgement"}


def test_operator_is_the_responsible_party():
    _, doc = _export(frameworks=["nist-800-53r5"])
    metadata = doc["assessment-results"]["metadata"]
    (party,) = metadata["parties"]
    assert party["name"] == "olga" and party["type"] == "person"
    assert metadata["responsible-parties"] == [{"role-id": "operator", "party-uuids": [party["uuid"]]}]


def test_pending_is_not_satisfied_with_reason_other_and_says_pending():
    _, doc = _export()
    findings, _ = _findings(doc, "pci-dss-4.0.1")
    status = findings["6.5.4"]["target"]["status"]
    assert status["state"] == "not-satisfied" and status["reason"] == "other"
    assert status["remarks"].startswith("AEGIS state: pending.")
    assert _prop(findings["6.5.4"], "aegis-state") == "pending"


def test_same_bundle_same_document():
    result = clean_result()
    rows = controls_for(result, ALL, seal=True)
    bundle = sealed_bundle(result, rows, ALL)
    assert json.dumps(assessment_results(bundle, rows)) == json.dumps(
        assessment_results(copy.deepcopy(bundle), rows)
    )


def test_controls_default_to_the_rows_sealed_in_the_bundle():
    bundle, doc = _export(frameworks=["dora"])
    assert assessment_results(bundle, None) == doc


def test_altered_bundle_is_refused():
    bundle, _ = _export(frameworks=["nist-800-53r5"])
    bundle["digest"] = "sha256:" + "0" * 64
    with pytest.raises(OscalError, match="was altered"):
        assessment_results(bundle, None)


@pytest.mark.parametrize(
    "bad,words",
    [
        ({"format": "something/v2"}, "neither a sealed bundle"),
        ({"format": "aegis.evidence.bundle/v1", "digest": "sha256:" + "0" * 64}, "payload: missing"),
        ([], "expected a JSON object"),
    ],
)
def test_unreadable_input_is_a_clear_error(bad, words):
    with pytest.raises(OscalError, match=words):
        assessment_results(bad, None)


def test_rows_sealed_without_a_key_are_a_clear_error():
    result = clean_result()
    rows = controls_for(result, ["nist-800-53r5"], seal=True)
    for row in rows:
        del row["oscal_id"]
    with pytest.raises(OscalError, match="crosswalk row 0 lacks oscal_id .*--frameworks"):
        assessment_results(sealed_bundle(result, rows, ["nist-800-53r5"]), None)
    rows[0]["oscal_id"], rows[0]["state"] = "cm-3", "maybe"
    with pytest.raises(OscalError, match="unknown state 'maybe'"):
        assessment_results(sealed_bundle(result, rows[:1], ["nist-800-53r5"]), None)


def test_plain_result_exports_marked_unsealed():
    result = clean_result()
    doc = assessment_results(result, controls_for(result, ["nist-800-53r5"]))
    oscal_check(doc)
    (res,) = [r for r in doc["assessment-results"]["back-matter"]["resources"] if r.get("rlinks")]
    assert _prop(res, "sealed") == "false"
    assert "UNSEALED" in res["description"]


# The validator must be able to fail: each mutation breaks one rule of the official schema.
@pytest.mark.parametrize(
    "mutate,path",
    [
        (
            lambda ar: ar["results"][0]["findings"][0]["target"]["status"].update(state="pending"),
            "/status/state",
        ),
        (
            lambda ar: ar["results"][0]["reviewed-controls"]["control-selections"][0]["include-controls"][
                0
            ].update({"control-id": "CM-3(2)"}),
            "control-id",
        ),
        (
            lambda ar: ar["results"][0]["findings"][0]["target"].update({"target-id": "6.5.1_obj"}),
            "target-id",
        ),
        (lambda ar: ar["results"][0].pop("reviewed-controls"), "/results/0"),
        (lambda ar: ar["metadata"].update({"last-modified": "2026-11-25 19:30"}), "last-modified"),
        (lambda ar: ar["back-matter"]["resources"][0].update({"uuid": "not-a-uuid"}), "uuid"),
        (lambda ar: ar["results"][0]["observations"][0].update({"methods": []}), "methods"),
    ],
)
def test_schema_validation_catches_a_broken_document(mutate, path):
    _, doc = _export(frameworks=["nist-800-53r5"])
    mutate(doc["assessment-results"])
    errors = oscal_errors(doc)
    assert errors, "the schema should have refused this document"
    assert any(path in e for e in errors), errors
    with pytest.raises(OscalError, match="not valid OSCAL"):
        oscal_check(doc)


def test_export_of_a_bundle_sealed_by_the_evidence_core():
    """Integration with evidence/core: the bundle its sealing functions produce exports and validates."""
    bundle_mod = pytest.importorskip("evidence.core.bundle")
    keys = pytest.importorskip("evidence.core.keys")
    result = clean_result()
    result["lab"]["node_configs"] = {n: "sha256:" + "cd" * 32 for n in ("r1", "r2", "r3")}
    rows = controls_for(result, ["nist-800-53r5", "nerc-cip-010-4"], seal=True)
    key = keys.SigningKey.generate()
    statement = bundle_mod.statement_build(
        result,
        change_text=None,
        lab_files=None,
        operator="olga",
        frameworks=["nist-800-53r5", "nerc-cip-010-4"],
        controls=rows,
        sealed_at="2026-11-25T19:30:15Z",
        keyid=key.keyid,
        ledger_origin="aegis.test/ledger",
    )
    envelope, digest = bundle_mod.statement_seal(statement, key)
    bundle = bundle_mod.bundle_assemble(envelope, digest, {"index": 3}, {})
    doc = assessment_results(json.loads(bundle_mod.bundle_dumps(bundle)), None)
    assert oscal_errors(doc) == []
    assert doc["assessment-results"]["metadata"]["version"] == digest
