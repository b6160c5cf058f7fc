"""The auditor's bundle browser: filters, downloads, and a Verify that shows every check."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from aegis_base.models import AuditEntry
from evidence.models import Bundle
from preflight.tests.web.fixtures import BLOCKED, NEEDS_APPROVAL, SHIP_READY

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_bundles(operator, operator2, submit):
    runs = [
        submit(operator, SHIP_READY),
        submit(operator2, NEEDS_APPROVAL, frameworks=["pci-dss-4.0.1"]),
        submit(operator, BLOCKED),
    ]
    assert Bundle.objects.count() == 3, [r.error for r in runs]
    return runs


@pytest.fixture
def auditor_client(auditor):
    client = Client()
    client.force_login(auditor)
    return client


FILTER_TABLE = [
    ("", {"ship_ready", "needs_approval", "blocked"}),
    ("verdict=blocked", {"blocked"}),
    ("operator=oscar", {"needs_approval"}),
    ("framework=pci-dss-4.0.1", {"needs_approval"}),
    ("lab=triangle&verdict=ship_ready", {"ship_ready"}),
    ("date_from=2000-01-01&date_to=2000-01-02", set()),
]


def test_filters_bad_filters_and_who_sees_what(three_bundles, auditor_client, operator2):
    # given three sealed bundles by two operators, when the auditor filters, then each row of the table holds
    for query, expected in FILTER_TABLE:
        rows = auditor_client.get(f"/api/bundles?{query}").json()
        assert {r["verdict"] for r in rows} == expected, query
        page = auditor_client.get(f"/evidence/bundles/?{query}")
        assert page.status_code == 200 and page.content.decode().count('class="button secondary"') == len(
            expected
        )
    # a filter that cannot be read is a 400 that says how to write it
    answer = auditor_client.get("/api/bundles?date_from=yesterday")
    assert answer.status_code == 400 and "YYYY-MM-DD" in answer.json()["date_from"][0]
    assert auditor_client.get("/evidence/bundles/?verdict=maybe").status_code == 400
    # an operator sees only her own bundles
    client = Client()
    client.force_login(operator2)
    assert [r["operator_username"] for r in client.get("/api/bundles").json()] == ["oscar"]
    other = Bundle.objects.filter(operator_username="olivia").first()
    assert client.get(f"/api/bundles/{other.pk}").status_code == 403


@pytest.fixture
def one_bundle(operator, submit):
    run = submit(operator, SHIP_READY)
    return Bundle.objects.get(run_id=run.run_id)


def test_downloads_are_the_sealed_bytes_and_a_real_pdf_and_verify_passes(one_bundle, auditor_client, auditor):
    bundle = one_bundle
    data = auditor_client.get(f"/evidence/bundles/{bundle.pk}/bundle.json")
    assert data.content == bundle.bundle_json.encode("ascii")
    assert json.loads(data.content)["digest"] == bundle.digest
    pdf = auditor_client.get(f"/evidence/bundles/{bundle.pk}/report.pdf")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert AuditEntry.objects.filter(actor=auditor, action="bundle.download_pdf").exists()
    # Verify shows every check passing
    page = auditor_client.post(f"/evidence/bundles/{bundle.pk}/").content.decode()
    assert "Verified: every check holds" in page and page.count("PASS") >= 10
    api = auditor_client.post(f"/api/bundles/{bundle.pk}/verify").json()
    assert api["verified"] is True and len(api["checks"]) >= 10 and all(c["ok"] for c in api["checks"])


def test_a_tampered_bundle_fails_verification_and_says_which_check(one_bundle, auditor_client):
    # given a bundle whose stored seal digest was edited after sealing (by hand, in the database)
    bundle = one_bundle
    hexpart = bundle.digest.split(":", 1)[1]
    forged = "sha256:" + ("0" if hexpart[0] != "0" else "1") + hexpart[1:]
    assert bundle.bundle_json.count(bundle.digest) >= 1
    Bundle.objects.filter(pk=bundle.pk).update(bundle_json=bundle.bundle_json.replace(bundle.digest, forged))
    api = auditor_client.post(f"/api/bundles/{bundle.pk}/verify").json()
    assert api["verified"] is False
    assert any(not c["ok"] for c in api["checks"])
    page = auditor_client.post(f"/evidence/bundles/{bundle.pk}/").content.decode()
    assert "NOT verified" in page and "FAIL" in page
