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
