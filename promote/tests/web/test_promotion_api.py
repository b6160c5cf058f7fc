"""Promotion through the API and the screens: who may start one, what every attempt leaves behind.

The bundles here come from simulator runs (fast), so the gate refuses them at G2 (simulated
evidence is never promotable) before any device is contacted: exactly what the persona
matrix needs. The end-to-end promotion on real routers is test_promotion_e2e.py.
"""

from __future__ import annotations

import json
import stat

import pytest
from rest_framework.test import APIClient

from aegis_base.models import AuditEntry
from evidence.core.keys import public_key_from_pem
from evidence.models import Bundle, LedgerEntry
from preflight.tests.web.fixtures import NEEDS_APPROVAL
from promote.core.approvals import ApproverKey, approval_verify, approver_keyring, private_key_decrypt
from promote.models import ApprovalSigningKey, PromotionRecord, SignedApproval
from promote.services import approval_decide, site_kek

pytestmark = pytest.mark.django_db

INVENTORY = """devices:
  r3: {host: 127.0.0.1, port: 2203, username: aegis, key_file: /nonexistent/id_ed25519}
"""


@pytest.fixture
def inventory(settings, tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    settings.AEGIS_DEVICE_INVENTORY = str(path)
    return path


@pytest.fixture
def approved(operator, approver, submit):
    """A sealed (simulated) run that needs approval, approved by alice."""
    run = submit(operator, NEEDS_APPROVAL)
    assert run.verdict == "needs_approval" and run.bundle_digest
    approval = approval_decide(run=run, approver=approver, decision="approve", comment="Expected route.")
    return run, approval, Bundle.objects.get(run_id=run.run_id)


def client_for(user):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_a_decision_on_a_sealed_bundle_is_a_signed_in_toto_approval_in_the_ledger(approved, settings):
    run, approval, bundle = approved
    signed = SignedApproval.objects.get(approval=approval)
    key_row = ApprovalSigningKey.objects.get(user=approval.approver)
    # the envelope verifies with alice's own key and binds to the bundle's seal digest
    ring = approver_keyring([ApproverKey("alice", public_key_from_pem(key_row.public_key_pem))])
    claims = approval_verify(signed.envelope, ring)
    assert (claims.approver, claims.decision, claims.bundle_digest) == ("alice", "approve", run.bundle_digest)
    assert claims.operator == "olivia" and claims.jti == signed.jti
    assert (claims.expires_at - claims.issued_at).total_seconds() == settings.AEGIS_APPROVAL_TTL_S
    # the private key is stored encrypted under the KEK; with no KEK set, a 0600 file holds one
    assert "PRIVATE" not in key_row.private_key_encrypted
    kek_file = settings.AEGIS_HOME / "keys" / "approval-kek"
    assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600
    assert (
        private_key_decrypt(key_row.private_key_encrypted, site_kek(), username="alice").keyid
        == key_row.keyid
    )
    # the ledger leaf of the decision is the envelope's digest
    from evidence.core.canonical import canonical_bytes, digest_str

    leaf = LedgerEntry.objects.get(index=signed.ledger_index)
    assert leaf.kind == "approval" and leaf.payload_digest == digest_str(canonical_bytes(signed.envelope))


def test_the_approver_key_is_made_once_and_reused(operator, approver, submit):
    first = submit(operator, NEEDS_APPROVAL)
    second = submit(operator, NEEDS_APPROVAL)
    approval_decide(run=first, approver=approver, decision="approve", comment="ok")
    approval_decide(run=second, approver=approver, decision="reject", comment="no")
    assert ApprovalSigningKey.objects.filter(user=approver).count() == 1
    keyids = set(SignedApproval.objects.values_list("keyid", flat=True))
    assert keyids == {ApprovalSigningKey.objects.get(user=approver).keyid}


@pytest.mark.parametrize(
    "persona,status",
    [
        ("operator", 200),
        ("approver", 200),
        ("approver2", 200),
        ("operator2", 403),
        ("auditor", 403),
        ("outsider", 403),
        ("anonymous", 401),
    ],
)
def test_who_may_start_a_promotion(persona, status, approved, inventory, request):
    _, _, bundle = approved
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    before = PromotionRecord.objects.count()
    response = client_for(user).post(f"/api/bundles/{bundle.pk}/promote", {"mode": "dry_run"}, format="json")
    assert response.status_code == status, response.content
    if status == 200:
        body = response.json()
        # simulated evidence: refused at G2, before any device (the inventory's key file does not exist)
        assert body["outcome"] == "refused" and not body["passed"]
        assert any(r.startswith("G2:") and "simulated" in r for r in body["reasons"]), body["reasons"]
        row = PromotionRecord.objects.get(pk=body["id"])
        assert row.actor_name == user.get_username() and row.via == "api"
        leaf = LedgerEntry.objects.get(index=row.ledger_index)
        assert leaf.kind == "promotion" and leaf.payload_digest == row.record_digest
        assert AuditEntry.objects.filter(action="promotion.refused", actor=user).exists()
    else:
        assert PromotionRecord.objects.count() == before


def test_input_errors_are_400_site_inventory_409_and_unknown_bundles_404(approved, operator, settings, tmp_path, inventory):
    _, _, bundle = approved
    client = client_for(operator)
    assert client.post("/api/bundles/999999/promote", {}, format="json").status_code == 404
    assert client.post("/api/bundles/abc/promote", {}, format="json").status_code == 404
    bad_mode = client.post(f"/api/bundles/{bundle.pk}/promote", {"mode": "yolo"}, format="json")
    assert bad_mode.status_code == 400 and "mode" in bad_mode.json()
    other = tmp_path / "other.yml"
    other.write_text("devices:\n  r1: {host: 127.0.0.1, key_file: /k}\n")
    settings.AEGIS_DEVICE_INVENTORY = str(other)
    missing = client.post(f"/api/bundles/{bundle.pk}/promote", {}, format="json")
    assert missing.status_code == 409 and "no device r3" in json.dumps(missing.json())
    other.write_text("devices:\n  r3: {host: 127.0.0.1, port: '22', key_file: /k}\n")
    invalid = client.post(f"/api/bundles/{bundle.pk}/promote", {}, format="json")
    assert invalid.status_code == 409 and "devices.r3.port" in json.dumps(invalid.json())
    settings.AEGIS_DEVICE_INVENTORY = ""
    unset = client.post(f"/api/bundles/{bundle.pk}/promote", {}, format="json")
    assert unset.status_code == 409 and "AEGIS_DEVICE_INVENTORY" in json.dumps(unset.json())
    assert PromotionRecord.objects.count() == 0, "an input error is not an attempt"


def test_live_without_the_site_setting_is_refused_at_g4_and_recorded(approved, approver, inventory, settings):
    _, _, bundle = approved
    settings.AEGIS_ALLOW_LIVE_PROMOTION = False
    body = (
        client_for(approver).post(f"/api/bundles/{bundle.pk}/promote", {"mode": "live"}, format="json").json()
    )
    assert body["outcome"] == "refused"
    g4 = next(c for c in body["record"]["gate"]["checks"] if c["gate"] == "G4")
    assert not g4["passed"] and body["mode"] == "dry-run"


def test_records_and_approvals_download_and_show_on_the_screens(
    approved, operator, auditor, outsider, inventory
):
    run, approval, bundle = approved
    client_for(operator).post(f"/api/bundles/{bundle.pk}/promote", {}, format="json")
    row = PromotionRecord.objects.get()
    # the plain record, downloadable, for the auditor too; not for an outsider
    got = client_for(auditor).get(f"/api/promotions/{row.pk}/json")
    assert got.status_code == 200 and json.loads(got.content) == row.record
    assert client_for(outsider).get(f"/api/promotions/{row.pk}/json").status_code == 403
    assert client_for(auditor).get("/api/promotions/424242").status_code == 404
    env = client_for(operator).get(f"/api/approvals/{approval.pk}/approval.json")
    assert env.status_code == 200 and json.loads(env.content) == approval.signed.envelope
    assert client_for(outsider).get(f"/api/approvals/{approval.pk}/approval.json").status_code == 403
    # the auditor's bundle detail and the operator's run page list the attempt
    from django.test import Client

    web = Client()
    web.force_login(auditor)
    page = web.get(f"/evidence/bundles/{bundle.pk}/").content.decode()
    assert 'id="promotion-records"' in page and f"/promote/promotions/{row.pk}/" in page
    assert "promote-dry-run" not in page, "auditors are read-only"
    web.force_login(operator)
    page = web.get(f"/preflight/runs/{run.run_id}/").content.decode()
    assert 'id="promotion-records"' in page and "signed approval.json" in page
    detail = web.get(f"/promote/promotions/{row.pk}/")
    assert detail.status_code == 200 and "G2" in detail.content.decode()


def test_the_dry_run_button_starts_an_attempt_and_shows_its_record(approved, approver, inventory):
    from django.test import Client

    _, _, bundle = approved
    web = Client()
    web.force_login(approver)
    response = web.post(f"/promote/bundles/{bundle.pk}/promote")
    row = PromotionRecord.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/promote/promotions/{row.pk}/"
    assert row.via == "web" and row.mode == "dry-run" and not row.live_requested
    assert web.get(f"/promote/bundles/{bundle.pk}/promote").status_code == 405


def test_a_recorded_rejection_is_always_shown_to_the_gate(operator, approver, submit, inventory, tmp_path):
    # given a run an approver rejected, when the operator promotes it from the command line
    # presenting no approval at all, the stored rejection still reaches G2
    run = submit(operator, NEEDS_APPROVAL)
    approval_decide(run=run, approver=approver, decision="reject", comment="Not in this window.")
    from django.core.management import call_command

    bundle = Bundle.objects.get(run_id=run.run_id)
    path = tmp_path / "bundle.json"
    path.write_text(bundle.bundle_json)
    with pytest.raises(SystemExit) as ended:
        call_command("promote", str(path), "--inventory", str(inventory))
    assert ended.value.code == 1
    g2 = next(c for c in PromotionRecord.objects.get().record["gate"]["checks"] if c["gate"] == "G2")
    assert any("rejected by" in r and "alice" in r for r in g2["reasons"]), g2


def test_the_cli_names_what_to_fix(tmp_path, inventory, capsys):
    from django.core.management import call_command

    not_json = tmp_path / "x.json"
    not_json.write_text("hello")
    for args, needle in [
        ([str(tmp_path / "missing.json")], "cannot read it"),
        ([str(not_json)], "not JSON"),
    ]:
        with pytest.raises(SystemExit) as ended:
            call_command("promote", *args, "--inventory", str(inventory))
        assert ended.value.code == 2 and needle in capsys.readouterr().err
    assert PromotionRecord.objects.count() == 0


def test_the_bundle_may_be_given_as_the_examiner_pdf(approved):
    from pathlib import Path

    from promote.services import bundle_read

    _, _, bundle = approved
    assert bundle_read(Path(bundle.pdf_path).read_bytes()) == json.loads(bundle.bundle_json)


def test_an_approval_is_spent_once_all_or_none(db):
    from django.db import IntegrityError

    from promote.models import UsedApprovalToken
    from promote.services import _consume

    _consume(["a" * 32], bundle_digest="sha256:" + "0" * 64, actor_name="olivia")
    # a second promotion presenting the same token plus a fresh one: refused, and the fresh one
    # is not marked used either (one transaction)
    with pytest.raises(IntegrityError):
        _consume(["b" * 32, "a" * 32], bundle_digest="sha256:" + "0" * 64, actor_name="oscar")
    assert list(UsedApprovalToken.objects.values_list("jti", "used_by")) == [("a" * 32, "olivia")]


def test_the_button_shows_for_a_real_approved_bundle_to_who_may_promote(
    approved, operator, operator2, auditor, submit
):
    from django.test import Client

    run, _, bundle = approved
    # the catalogue row's tier (not the sealed bundle) drives the courtesy button
    Bundle.objects.filter(pk=bundle.pk).update(tier="real")
    web = Client()
    web.force_login(operator)
    assert 'id="promote-dry-run"' in web.get(f"/preflight/runs/{run.run_id}/").content.decode()
    web.force_login(auditor)
    assert 'id="promote-dry-run"' not in web.get(f"/evidence/bundles/{bundle.pk}/").content.decode()
    # a real bundle still waiting for its approval: no button, and why
    pending = submit(operator, NEEDS_APPROVAL)
    Bundle.objects.filter(run_id=pending.run_id).update(tier="real")
    web.force_login(operator)
    page = web.get(f"/preflight/runs/{pending.run_id}/").content.decode()
    assert 'id="promote-dry-run"' not in page and 'id="promote-waiting"' in page


@pytest.mark.parametrize(
    "next_url, lands_on",
    [
        ("https://evil.example/phish", "/promote/queue/"),  # another site: never followed
        ("//evil.example/phish", "/promote/queue/"),
        ("/evidence/bundles/", "/evidence/bundles/"),  # a page of this site: back where the form was
    ],
)
def test_the_button_returns_only_to_a_page_of_this_site(approved, approver, settings, next_url, lands_on):
    from django.test import Client

    # given a promotion that cannot start (no inventory), posted with a `next` address
    settings.AEGIS_DEVICE_INVENTORY = ""
    _, _, bundle = approved
    web = Client()
    web.force_login(approver)
    response = web.post(f"/promote/bundles/{bundle.pk}/promote", {"next": next_url})
    # then the redirect goes back only inside AEGIS
    assert response.status_code == 302 and response["Location"] == lands_on
