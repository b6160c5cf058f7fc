"""`manage.py oscal_export`: given a bundle file, when exported, then a valid OSCAL file or a clear error."""

from __future__ import annotations

import hashlib
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from compliance.checks import compliance_data_check
from compliance.crosswalk import controls_for
from compliance.oscal import oscal_errors
from compliance.tests.results import clean_result, sealed_bundle

FRAMEWORKS = ["nist-800-53r5", "nerc-cip-010-4"]


@pytest.fixture
def bundle_file(tmp_path):
    result = clean_result()
    rows = controls_for(result, FRAMEWORKS, seal=True)
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(sealed_bundle(result, rows, FRAMEWORKS), indent=2))
    return path


def _run(*args):
    out, err = StringIO(), StringIO()
    call_command("oscal_export", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_writes_a_valid_document_and_says_so(bundle_file, tmp_path):
    out_path = tmp_path / "ar.json"
    stdout, stderr = _run(bundle_file, "--out", out_path)
    doc = json.loads(out_path.read_text())
    assert oscal_errors(doc) == []
    assert stdout == ""
    assert "valid against the official schema" in stderr and "2 framework(s)" in stderr
    # the file's own hash is recorded beside the seal digest
    resources = doc["assessment-results"]["back-matter"]["resources"]
    hashes = [h["value"] for r in resources for link in r.get("rlinks", []) for h in link["hashes"]]
    assert hashlib.sha256(bundle_file.read_bytes()).hexdigest() in hashes
    assert not list(tmp_path.glob(".ar.json.*"))  # no temporary file left behind


def test_standard_output_by_default(bundle_file):
    stdout, _ = _run(bundle_file)
    assert json.loads(stdout)["assessment-results"]["metadata"]["oscal-version"] == "1.2.3"


def test_frameworks_option_maps_afresh(bundle_file):
    stdout, _ = _run(bundle_file, "--frameworks", "dora,nis2")
    frameworks = {
        p["value"]
        for r in json.loads(stdout)["assessment-results"]["results"]
        for p in r["props"]
        if p["name"] == "framework"
    }
    assert frameworks == {"dora", "nis2"}


@override_settings(AEGIS_FRAMEWORKS=["hipaa"])
def test_plain_result_is_accepted_with_the_site_default_and_a_warning(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(clean_result()))
    stdout, stderr = _run(path)
    (result,) = json.loads(stdout)["assessment-results"]["results"]
    assert {"name": "framework", "ns": "https://aegis.local/ns/oscal", "value": "hipaa"} in result["props"]
    assert "unsealed result" in stderr


@pytest.mark.parametrize(
    "content,words",
    [
        (b'{"format": ', "not JSON"),
        (b"%PDF-1.7\n...", "is a PDF"),
        (b'{"format": "aegis.evidence.bundle/v1"}', "payload: missing"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, content, words):
    path = tmp_path / "in.json"
    path.write_bytes(content)
    out_path = tmp_path / "ar.json"
    with pytest.raises(CommandError, match=words):
        _run(path, "--out", out_path)
    assert not out_path.exists()


def test_tampered_bundle_is_refused(bundle_file, tmp_path):
    bundle = json.loads(bundle_file.read_text())
    bundle["dsseEnvelope"]["payload"] = bundle["dsseEnvelope"]["payload"][:-8] + "AAAAAAA="
    bundle_file.write_text(json.dumps(bundle))
    with pytest.raises(CommandError, match="was altered"):
        _run(bundle_file, "--out", tmp_path / "ar.json")
    assert not (tmp_path / "ar.json").exists()


def test_unknown_framework_and_missing_file(bundle_file, tmp_path):
    with pytest.raises(CommandError, match="unknown framework.*'sox'.*known: "):
        _run(bundle_file, "--frameworks", "sox")
    with pytest.raises(CommandError, match="cannot read"):
        _run(tmp_path / "nope.json")
    with pytest.raises(CommandError, match="no such folder"):
        _run(bundle_file, "--out", tmp_path / "missing" / "ar.json")


def test_system_check_refuses_unknown_site_frameworks():
    with override_settings(AEGIS_FRAMEWORKS=["nist-800-53r5", "sox"]):
        (error,) = compliance_data_check()
    assert error.id == "compliance.E001" and "sox" in error.msg
    with override_settings(AEGIS_FRAMEWORKS=["nist-800-53r5"]):
        assert compliance_data_check() == []


def test_system_check_reports_a_broken_data_file(monkeypatch):
    from compliance import checks
    from compliance.catalogues import CatalogueError

    def broken():
        raise CatalogueError(
            "compliance/data/frameworks/dora.yaml: controls[2] (RTS-17(1)(b)): `marking` must be one of"
        )

    monkeypatch.setattr(checks, "catalogues_load", broken)
    (error,) = compliance_data_check()
    assert error.id == "compliance.E002" and "dora.yaml: controls[2]" in error.msg


@pytest.mark.django_db
@override_settings(AEGIS_HIGH_RISK_APPROVERS=2)
def test_approvals_recorded_after_sealing_are_applied(tmp_path):
    from django.contrib.auth import get_user_model

    from preflight.models import ChangeRequest, Lab, PreflightRun
    from promote.models import Approval

    # given a sealed high-risk bundle, and two approvals recorded on its digest after sealing
    result = clean_result()
    result["risk"]["tier"] = "high"
    rows = controls_for(result, ["dora"], seal=True)
    bundle = sealed_bundle(result, rows, ["dora"])
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    users = get_user_model().objects
    olga, alice, bob = (users.create_user(name) for name in ("olga", "alice", "bob"))
    lab = Lab.objects.create(name="triangle", folder="labs/triangle")
    change = ChangeRequest.objects.create(operator=olga, lab=lab, title="Announce 10.42.0.0/24")
    run = PreflightRun.objects.create(change=change, backend="netns", bundle_digest=bundle["digest"])
    Approval.objects.create(
        run=run, approver=alice, decision="approve", comment="ok", subject_digest=bundle["digest"]
    )

    def approval_finding(doc):
        (res,) = doc["assessment-results"]["results"]
        return next(f for f in res["findings"] if any(p["value"] == "RTS-17(1)(b)" for p in f["props"]))[
            "target"
        ]["status"]

    # when exported with --approvals: one of two approvers -> still pending (not-satisfied, other)
    stdout, stderr = _run(path, "--approvals")
    assert approval_finding(json.loads(stdout)) == {
        "state": "not-satisfied",
        "reason": "other",
        "remarks": "AEGIS state: pending. awaiting 1 more approval(s) by approvers other than the operator "
        "(1 of 2 required for a high-risk change).",
    }
    assert "1 recorded decision(s) applied" in stderr
    # then with the second approver recorded, the control is satisfied
    Approval.objects.create(
        run=run, approver=bob, decision="approve", comment="ok", subject_digest=bundle["digest"]
    )
    stdout, _ = _run(path, "--approvals")
    assert approval_finding(json.loads(stdout)) == {"state": "satisfied", "reason": "pass"}
    # and without --approvals the export says what was sealed: pending
    stdout, _ = _run(path)
    assert approval_finding(json.loads(stdout))["state"] == "not-satisfied"
