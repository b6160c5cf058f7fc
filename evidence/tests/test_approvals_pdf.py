"""Approvals decided after sealing show in the re-rendered PDF; the seal does not change."""

from __future__ import annotations

import subprocess

import pytest

from evidence.models import Bundle
from evidence.services import approvals_of_run, bundle_pdf_refresh, bundle_verify
from preflight.tests.web.fixtures import *  # noqa: F401,F403 - personas, the lab, runs on the simulator
from preflight.tests.web.fixtures import NEEDS_APPROVAL

pytestmark = pytest.mark.django_db


def pdf_text(path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_an_approval_appears_in_the_refreshed_pdf_and_the_bundle_still_verifies(submit, operator, approver):
    from promote.services import approval_decide

    run = submit(operator, NEEDS_APPROVAL)
    bundle = Bundle.objects.get(run_id=run.run_id)
    assert "Approvals pending" in " ".join(pdf_text(bundle.pdf_path).split())
    sealed_bytes = bundle.bundle_json

    approval_decide(run=run, approver=approver, decision="approve", comment="Checked the diff; fine.")
    assert [a["decision"] for a in approvals_of_run(run.run_id)] == ["approved"]
    path = bundle_pdf_refresh(bundle)
    text = pdf_text(path)
    assert "approved by alice" in text and bundle.digest in text
    bundle.refresh_from_db()
    assert bundle.bundle_json == sealed_bytes  # the seal is untouched
    checks = bundle_verify(path.read_bytes())
    assert all(c.ok for c in checks) and checks[3].detail == bundle.digest
