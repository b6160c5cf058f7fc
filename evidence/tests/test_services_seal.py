"""run_seal: files, rows, ledger, the PDF and its attachment, on the real database."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pikepdf
import pypdf
import pytest

from evidence.core.bundle import bundle_statement
from evidence.models import Bundle, Checkpoint, LedgerEntry
from evidence.services import SealError, bundle_verify, ledger_check, run_seal
from evidence.tests.conftest import LAB

pytestmark = pytest.mark.django_db


def pdf_text(path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def sealed(evidence_home, tmp_path, result_needs_approval, change_text):
    out = tmp_path / "out"
    outcome = run_seal(
        result_needs_approval,
        lab_dir=LAB,
        change_text=change_text,
        out_dir=out,
        frameworks=["nist-800-53r5", "nerc-cip-010-4"],
        operator="olivia",
    )
    return outcome, out


def test_seal_writes_the_export_folder_and_one_row_per_table(sealed):
    outcome, out = sealed
    assert sorted(p.name for p in out.iterdir()) == [
        "bundle.json",
        "report.pdf",
        "site-keys",
        "verify_standalone.py",
    ]
    assert outcome.bundle_path == out / "bundle.json" and outcome.pdf_path == out / "report.pdf"
    row = Bundle.objects.get(pk=outcome.bundle_id)
    assert (
        row.digest == outcome.digest and row.verdict == "needs_approval" and row.operator_username == "olivia"
    )
    assert row.bundle_json.encode() == (out / "bundle.json").read_bytes()
    assert (
        row.tier == "simulated"
        and row.lab_name == "triangle"
        and row.frameworks == ["nist-800-53r5", "nerc-cip-010-4"]
    )
    assert (LedgerEntry.objects.count(), Checkpoint.objects.count(), outcome.ledger_index) == (1, 1, 0)


def test_the_bundle_verifies_with_the_site_keys(sealed):
    outcome, out = sealed
    checks = bundle_verify((out / "bundle.json").read_bytes())
    assert len(checks) == 10 and all(c.ok for c in checks), [(c.name, c.detail) for c in checks]
    assert checks[3].detail == outcome.digest


def test_statement_subjects_are_the_change_and_every_node_config(sealed, change_text, result_needs_approval):
    import hashlib

    _, out = sealed
    statement = bundle_statement(json.loads((out / "bundle.json").read_text()))
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects["change"] == hashlib.sha256(change_text.encode()).hexdigest()
    for node, digest in result_needs_approval["lab"]["node_configs"].items():
        assert "sha256:" + subjects[f"lab/triangle/{node}/frr.conf"] == digest
    predicate = statement["predicate"]
    assert predicate["twin_vs_production"]["clause"] == "NERC CIP-010-4 R1.5.2"
    assert predicate["egress"]["outbound"] == "none"
    assert predicate["risk_rubric_version"] == "risk-rubric/1"
    assert predicate["inputs"]["lab"]["files"]["r1/frr.conf"]["text"].startswith("frr version")
    # The control mapping comes from compliance/ and covers exactly the chosen frameworks.
    frameworks = {row["framework"] for row in predicate["controls"]}
    assert frameworks == {"nist-800-53r5", "nerc-cip-010-4"}


def test_the_pdf_opens_shows_verdict_and_seal_and_carries_the_bundle(sealed):
    outcome, out = sealed
    pdf_path = out / "report.pdf"
    reader = pypdf.PdfReader(pdf_path)
    assert len(reader.pages) >= 3
    text = pdf_text(pdf_path)
    assert "NEEDS APPROVAL" in text and outcome.digest in text
    assert text.count(f"seal {outcome.digest}") == len(reader.pages)  # the seal on every page
    assert f"page {len(reader.pages)}/{len(reader.pages)}" in text
    assert "Approvals" in text and "pending" in text
    assert "NERC CIP-010-4 R1.5.2" in text and "CM-3(2)" in text  # twin statement and crosswalk table
    with pikepdf.open(pdf_path) as pdf:
        attached = pdf.attachments["bundle.json"]
        assert attached.get_file().read_bytes() == (out / "bundle.json").read_bytes()
        assert attached.obj.AFRelationship == pikepdf.Name.Source
        assert [str(spec.UF) for spec in pdf.Root.AF] == [
            "bundle.json",
            "verify_standalone.py",
            f"site-key-{Bundle.objects.get().keyid[:12]}.pub.pem",
            "oscal-assessment-results.json",
        ]
        # The OSCAL export derived from the bundle rides along and is valid OSCAL.
        from compliance.oscal import oscal_check

        oscal = json.loads(pdf.attachments["oscal-assessment-results.json"].get_file().read_bytes())
        oscal_check(oscal)
        assert outcome.digest.split(":")[1] in json.dumps(oscal)
        meta = pdf.open_metadata()
        assert meta["pdfaid:part"] == "3" and meta["pdfaid:conformance"] == "B"
        intent = pdf.Root.OutputIntents[0]
        assert intent.S == pikepdf.Name.GTS_PDFA1 and intent.DestOutputProfile.read_bytes()[36:40] == b"acsp"
        for page in pdf.pages:  # PDF/A: every font used is embedded
            for _, font in page.Resources.Font.items():
                descendant = font.DescendantFonts[0] if "/DescendantFonts" in font else font
                assert "/FontFile2" in descendant.FontDescriptor, font.BaseFont
    # The attachment, saved and checked on its own, verifies.
    checks = bundle_verify(pdf_path.read_bytes())
    assert all(c.ok for c in checks) and checks[0].detail.startswith("bundle attached to the PDF")


def test_the_shipped_verifier_verifies_the_pdf_with_the_shipped_keys(sealed):
    _, out = sealed
    run = subprocess.run(
        [sys.executable, "verify_standalone.py", "report.pdf", "--keyring", "site-keys"],
        cwd=out, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_blocked_run_pdf_shows_reasons_llm_and_failed_rollback(evidence_home, tmp_path, result_blocked):
    outcome = run_seal(result_blocked, lab_dir=LAB, change_text=None, out_dir=tmp_path / "b", frameworks=["pci-dss-4.0.1"],
                       operator=None)  # fmt: skip
    text = pdf_text(outcome.pdf_path)
    for expected in (
        "BLOCKED",
        "SESSION_LOST",
        "smollm2-135m-instruct-q8",
        "did NOT equal the baseline",
        "VIOLATED",
        "none (a blocked run is not approvable)",
        "% Invalid prefix range",
    ):
        assert expected in text, expected
    assert all(c.ok for c in bundle_verify(outcome.bundle_path.read_bytes()))


def test_letter_page_size_from_settings(evidence_home, settings, tmp_path, result_needs_approval):
    settings.AEGIS_PDF_PAGE_SIZE = "Letter"
    outcome = run_seal(result_needs_approval, lab_dir=None, change_text=None, out_dir=tmp_path / "l", frameworks=[],
                       operator="olivia")  # fmt: skip
    box = pypdf.PdfReader(outcome.pdf_path).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)


def test_two_seals_take_consecutive_ledger_positions_and_the_ledger_checks(evidence_home, tmp_path, result_needs_approval,
                                                                          result_blocked):  # fmt: skip
    a = run_seal(
        result_needs_approval,
        lab_dir=LAB,
        change_text=None,
        out_dir=tmp_path / "a",
        frameworks=[],
        operator="o",
    )
    b = run_seal(
        result_blocked, lab_dir=LAB, change_text=None, out_dir=tmp_path / "b", frameworks=[], operator="o"
    )
    assert (a.ledger_index, b.ledger_index) == (0, 1)
    # The first bundle's proof was against size 1; it still verifies, and so does the second.
    assert all(c.ok for c in bundle_verify(a.bundle_path.read_bytes()))
    assert "leaf 1 of 2" in bundle_verify(b.bundle_path.read_bytes())[-1].detail
    report = ledger_check()
    assert report.ok, report.problems
    assert (report.size, report.checkpoints, report.bundles) == (2, 2, 2)


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda r: r.pop("verdict"), "result.verdict"),
        (lambda r: r.update(format="something/else"), "result.format"),
        (lambda r: r["lab"]["node_configs"].update(r1="md5:abc"), "result.lab.node_configs.r1"),
        (lambda r: r.update(timings={"x": float("nan")}), "cannot canonicalize"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_leaves_nothing_behind(evidence_home, tmp_path, result_needs_approval,
                                                                       breakage, message):  # fmt: skip
    breakage(result_needs_approval)
    with pytest.raises(SealError, match=message.replace("(", r"\(")):
        run_seal(
            result_needs_approval,
            lab_dir=LAB,
            change_text=None,
            out_dir=tmp_path / "x",
            frameworks=[],
            operator="o",
        )
    assert not (tmp_path / "x").exists()
    assert (Bundle.objects.count(), LedgerEntry.objects.count(), Checkpoint.objects.count()) == (0, 0, 0)


def test_an_unknown_framework_is_refused_before_anything_is_written(
    evidence_home, tmp_path, result_needs_approval
):
    with pytest.raises(SealError, match="no-such-framework"):
        run_seal(result_needs_approval, lab_dir=LAB, change_text=None, out_dir=tmp_path / "x",
                 frameworks=["no-such-framework"], operator="o")  # fmt: skip
    assert LedgerEntry.objects.count() == 0 and not (tmp_path / "x").exists()


def test_a_missing_lab_folder_is_refused(evidence_home, tmp_path, result_needs_approval):
    with pytest.raises(SealError, match="does not exist"):
        run_seal(result_needs_approval, lab_dir=tmp_path / "nolab", change_text=None, out_dir=tmp_path / "x",
                 frameworks=[], operator="o")  # fmt: skip
    assert LedgerEntry.objects.count() == 0


def test_a_failing_pdf_rolls_back_the_ledger_append(evidence_home, settings, tmp_path, result_needs_approval):
    settings.AEGIS_PDF_PAGE_SIZE = "A3"  # not offered: the PDF step fails after the ledger append
    with pytest.raises(SealError, match="A4 or Letter"):
        run_seal(
            result_needs_approval,
            lab_dir=LAB,
            change_text=None,
            out_dir=tmp_path / "x",
            frameworks=[],
            operator="o",
        )
    assert (Bundle.objects.count(), LedgerEntry.objects.count(), Checkpoint.objects.count()) == (0, 0, 0)
    assert not (tmp_path / "x").exists()
    assert not [p.name for p in tmp_path.iterdir() if "sealing" in p.name]  # no staging folder left


def test_an_output_path_that_is_a_file_is_refused_before_sealing(
    evidence_home, tmp_path, result_needs_approval
):
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(SealError, match="is not a folder"):
        run_seal(result_needs_approval, lab_dir=LAB, change_text=None, out_dir=tmp_path / "taken", frameworks=[],
                 operator="o")  # fmt: skip
    assert LedgerEntry.objects.count() == 0


def test_sealing_again_into_the_same_folder_replaces_the_files(sealed, result_blocked):
    outcome, out = sealed
    again = run_seal(result_blocked, lab_dir=LAB, change_text=None, out_dir=out, frameworks=[], operator="o")
    assert again.digest != outcome.digest
    assert json.loads((out / "bundle.json").read_text())["digest"] == again.digest
    assert sorted(p.name for p in out.iterdir()) == [
        "bundle.json",
        "report.pdf",
        "site-keys",
        "verify_standalone.py",
    ]
    assert not [p.name for p in out.parent.iterdir() if "sealing" in p.name]


def test_re_rendering_with_approvals_changes_the_pdf_not_the_bundle(sealed):
    from evidence.services import bundle_report_render

    outcome, out = sealed
    row = Bundle.objects.get(pk=outcome.bundle_id)
    pdf = bundle_report_render(row, approvals=[{"approver": "avery", "role": "approver", "decision": "approved",
                                                "at": "2026-11-25T20:00:00Z"}])  # fmt: skip
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "approved by avery" in text and outcome.digest in text
    assert all(c.ok for c in bundle_verify(pdf))


def test_the_pdf_shows_the_per_line_ledger_the_intent_and_the_rollback_outcome(evidence_home, tmp_path,
                                                                             result_needs_approval, change_text):
    result = result_needs_approval
    result["apply"]["ledger"] = {
        "available": True, "summary": {"applied": 1, "rejected": 0, "not_applied": 0, "reinterpreted": 1},
        "devices": {"r3": {"lines": [
            {"node": "r3", "line_no": 1, "line": "router bgp 65003", "status": "applied", "frr_said": ""},
            {"node": "r3", "line_no": 2, "line": "neighbor 10.0.23.0 timers 5 4", "status": "reinterpreted",
             "became": "neighbor 10.0.23.0 timers 1 4", "frr_said": ""}], "unrequested": []}}}
    result["intent"] = {"used": "inferred", "empty": False, "inferred": {
        "basis": ["r3: ip route 10.43.0.0/24 Null0 -> announces 10.43.0.0/24"],
        "prefixes_added": {"*": ["10.43.0.0/24"]}}}
    result["rollback"].update(status="restored_after_retry", restored_after_s=12.5)
    outcome = run_seal(result, lab_dir=LAB, change_text=change_text, out_dir=tmp_path / "out",
                       frameworks=["nist-800-53r5"], operator="olivia")
    text = " ".join(subprocess.run(["pdftotext", str(outcome.pdf_path), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    assert "Per-line ledger" in text and "reinterpreted" in text and "timers 1 4" in text
    assert "inferred from the change lines" in text and "announces 10.43.0.0/24" in text
    assert "rollback restores only after 12.5 s" in text
