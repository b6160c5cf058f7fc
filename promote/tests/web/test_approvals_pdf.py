"""Approvals decided after sealing show in the re-rendered PDF; the seal does not change."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from evidence.models import Bundle
from evidence.services import bundle_verify
from preflight.tests.web.fixtures import *  # noqa: F401,F403 - personas, the lab, runs on the simulator
from preflight.tests.web.fixtures import NEEDS_APPROVAL
from promote.selectors import approval_records
from promote.services import approval_decide

pytestmark = pytest.mark.django_db


def pdf_text(path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_an_approval_appears_in_the_refreshed_pdf_and_the_bundle_still_verifies(
    submit, operator, approver, django_capture_on_commit_callbacks
):
    run = submit(operator, NEEDS_APPROVAL)
    bundle = Bundle.objects.get(run_id=run.run_id)
    assert "Approvals pending" in " ".join(pdf_text(bundle.pdf_path).split())
    sealed_bytes = bundle.bundle_json

    # when an approver decides (the PDF is refreshed once the decision commits)
    with django_capture_on_commit_callbacks(execute=True):
        approval_decide(run=run, approver=approver, decision="approve", comment="Checked the diff; fine.")
    bundle.refresh_from_db()
    assert [a["decision"] for a in bundle.approvals] == ["approve"]
    assert approval_records(run.run_id) == bundle.approvals and bundle.approvals[0]["bundle_digest"] == bundle.digest
    path = Path(bundle.pdf_path)
    text = pdf_text(path)
    assert "approved by alice" in text and bundle.digest in text
    bundle.refresh_from_db()
    assert bundle.bundle_json == sealed_bytes  # the seal is untouched
    checks = bundle_verify(path.read_bytes())
    assert all(c.ok for c in checks) and checks[3].detail == bundle.digest
