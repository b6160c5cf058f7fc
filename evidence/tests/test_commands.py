"""manage.py verify_bundle, ledger_check and evidence_key, as an operator or auditor runs them."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from evidence.core.bundle import bundle_dumps
from evidence.services import run_seal
from evidence.tests.conftest import LAB

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, no_color=True)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def sealed(evidence_home, tmp_path, result_needs_approval):
    return run_seal(result_needs_approval, lab_dir=LAB, change_text=None, out_dir=tmp_path / "out", frameworks=[],
                    operator="olivia")  # fmt: skip


def test_verify_bundle_passes_on_json_and_pdf(sealed):
    for path in (sealed.bundle_path, sealed.pdf_path):
        code, out = run("verify_bundle", str(path))
        assert code == 0, out
        assert out.count("PASS") == 10 and "VERIFIED: all 10 checks hold" in out


def test_verify_bundle_names_the_failing_check_and_exits_1(sealed, tmp_path):
    bundle = json.loads(sealed.bundle_path.read_text())
    bundle["ledger"]["index"] += 1
    bad = tmp_path / "bad.json"
    bad.write_bytes(bundle_dumps(bundle))
    code, out = run("verify_bundle", str(bad))
    assert code == 1
    assert "FAIL  checkpoint" in out and "NOT VERIFIED: failing check: checkpoint" in out


def test_verify_bundle_on_a_missing_file_is_a_clear_error(evidence_home, tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("verify_bundle", str(tmp_path / "missing.json"))


def test_ledger_check_command(sealed):
    code, out = run("ledger_check")
    assert code == 0 and "LEDGER OK: 1 leaves, 1 checkpoints, 1 bundles" in out


def test_rotation_keeps_old_bundles_verifiable_and_signs_new_ones_with_the_new_key(
    sealed, tmp_path, result_blocked
):
    old_keyid = json.loads(sealed.bundle_path.read_text())["dsseEnvelope"]["signatures"][0]["keyid"]
    code, out = run("evidence_key", "rotate")
    assert code == 0 and f"retired {old_keyid}" in out
    assert run("verify_bundle", str(sealed.bundle_path))[0] == 0
    newer = run_seal(
        result_blocked, lab_dir=LAB, change_text=None, out_dir=tmp_path / "new", frameworks=[], operator="o"
    )
    new_keyid = json.loads(newer.bundle_path.read_text())["dsseEnvelope"]["signatures"][0]["keyid"]
    assert new_keyid != old_keyid
    assert run("verify_bundle", str(newer.bundle_path))[0] == 0
    # The ledger's old checkpoints were signed by the retired key and still check.
    assert run("ledger_check")[0] == 0
    code, out = run("evidence_key", "export", "--out", str(tmp_path / "pub"))
    assert code == 0 and sorted(p.name for p in (tmp_path / "pub").iterdir()) == sorted(
        [f"{old_keyid}.pub.pem", f"{new_keyid}.pub.pem"]
    )


def test_ledger_check_proves_the_ledger_extends_an_old_bundles_checkpoint(sealed, tmp_path, result_blocked):
    run_seal(
        result_blocked, lab_dir=LAB, change_text=None, out_dir=tmp_path / "later", frameworks=[], operator="o"
    )
    code, out = run("ledger_check", "--checkpoint", str(sealed.bundle_path))
    assert code == 0, out
    assert "the ledger (size 2) extends the given checkpoint (size 1)" in out


def test_ledger_check_refuses_a_checkpoint_signed_by_someone_else(sealed, tmp_path):
    from evidence.core.checkpoint import checkpoint_sign
    from evidence.core.keys import SigningKey

    forged = tmp_path / "forged.note"
    forged.write_text(checkpoint_sign("aegis.test/ledger", 1, bytes(32), SigningKey.generate()))
    code, out = run("ledger_check", "--checkpoint", str(forged))
    assert code == 1 and "the checkpoint does not verify" in out


def test_selectors_find_the_bundle_and_its_leaf(sealed):
    from evidence.selectors import bundle_by_digest, checkpoint_latest, ledger_entries_for

    assert bundle_by_digest(sealed.digest).ledger_index == sealed.ledger_index
    assert [e.kind for e in ledger_entries_for(sealed.digest)] == ["bundle"]
    assert checkpoint_latest().tree_size == 1
    assert bundle_by_digest("sha256:" + "0" * 64) is None


def test_admin_shows_the_ledger_but_offers_no_edit_or_delete(sealed, admin_client):
    page = admin_client.get("/admin/evidence/ledgerentry/")
    assert page.status_code == 200 and sealed.digest[:19].encode() in page.content
    from evidence.models import LedgerEntry

    entry = LedgerEntry.objects.get()
    assert admin_client.get(f"/admin/evidence/ledgerentry/{entry.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/evidence/bundle/add/").status_code == 403


def test_seal_result_seals_a_result_file_and_prints_the_seal(evidence_home, tmp_path, result_needs_approval):
    (tmp_path / "result.json").write_text(json.dumps(result_needs_approval))
    code, out = run("seal_result", str(tmp_path / "result.json"), "--lab", str(LAB), "--framework", "dora",
                    "--operator", "olivia")  # fmt: skip
    assert code == 0, out
    digest = out.split("seal: ")[1].split()[0]
    assert (tmp_path / "bundle.json").is_file() and (tmp_path / "report.pdf").is_file()
    assert run("verify_bundle", str(tmp_path / "report.pdf"))[1].count("PASS") == 10
    assert digest == json.loads((tmp_path / "bundle.json").read_text())["digest"]


def test_seal_result_reports_bad_input_without_a_traceback(evidence_home, tmp_path, result_needs_approval):
    (tmp_path / "notjson.json").write_text("{")
    with pytest.raises(CommandError, match="not a JSON result document"):
        call_command("seal_result", str(tmp_path / "notjson.json"))
    del result_needs_approval["verdict"]
    (tmp_path / "result.json").write_text(json.dumps(result_needs_approval))
    with pytest.raises(CommandError, match="not sealed: result.verdict"):
        call_command("seal_result", str(tmp_path / "result.json"))
    with pytest.raises(CommandError, match="No such file"):
        call_command("seal_result", str(tmp_path / "missing.json"))


def test_verifying_needs_only_the_public_keyring(sealed, settings, tmp_path):
    # The web server may not read the private key the twin worker owns: simulate an
    # unreadable key file (a dangling path counts as well for root, who reads anything).
    settings.AEGIS_SITE_KEY_FILE = tmp_path / "unreadable" / "site.pem"
    (tmp_path / "unreadable").mkdir()
    (tmp_path / "unreadable" / "site.pem").write_text("not a key")
    (tmp_path / "unreadable" / "site.pem").chmod(0o600)
    code, out = run("verify_bundle", str(sealed.bundle_path))
    assert code == 0, out


def test_a_kept_ledger_head_is_proven_extended_later(sealed, tmp_path, result_blocked):
    code, out = run("ledger_head", "--out", str(tmp_path / "head.note"))
    assert code == 0 and "size 1" in out
    run_seal(
        result_blocked, lab_dir=LAB, change_text=None, out_dir=tmp_path / "later", frameworks=[], operator="o"
    )
    code, out = run("ledger_check", "--checkpoint", str(tmp_path / "head.note"))
    assert code == 0 and "extends the given checkpoint (size 1)" in out
    printed = run("ledger_head")[1]
    assert printed.startswith("aegis.test/ledger\n2\n")


def test_ledger_head_of_an_empty_ledger_says_so(evidence_home):
    with pytest.raises(CommandError, match="the ledger is empty"):
        call_command("ledger_head")
