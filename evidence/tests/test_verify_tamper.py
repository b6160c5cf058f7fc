"""The standalone verifier over a good bundle, and every tampering the issue lists."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zlib

import pytest

from evidence.core.bundle import bundle_dumps, statement_seal
from evidence.core.keys import SigningKey
from evidence.tests.conftest import REPO, core_bundle, result_fixture
from evidence.verify_standalone import verify_bytes

ALL_CHECKS = [
    "bundle-file", "canonical-layout", "trusted-keys", "seal-digest", "signature",
    "statement", "subjects", "ledger-leaf", "checkpoint", "inclusion",
]  # fmt: skip


@pytest.fixture(scope="module")
def site():
    return SigningKey.generate()


@pytest.fixture(scope="module")
def sealed(site):
    return core_bundle(result_fixture("needs_approval"), site)


def failing(data: bytes, site: SigningKey, **kw) -> list[str]:
    checks = verify_bytes(data, {site.keyid: site.public_key}, **kw)
    return [c.name for c in checks if not c.ok]


def test_a_good_bundle_passes_every_check_in_order(sealed, site):
    checks = verify_bytes(sealed[1], {site.keyid: site.public_key})
    assert [c.name for c in checks] == ALL_CHECKS
    assert all(c.ok for c in checks), [(c.name, c.detail) for c in checks if not c.ok]


def test_flipping_any_byte_is_detected(sealed, site):
    data = sealed[1]
    # Every 97th byte covers the envelope, the payload, the proof and the keys; each flip
    # must fail some check (which one depends on where the byte is).
    positions = list(range(0, len(data), 97)) + [len(data) - 1, len(data) - 2]
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 0x01
        assert failing(bytes(flipped), site), f"flip at byte {pos} ({data[pos : pos + 1]!r}) went unnoticed"


def test_a_signature_swapped_in_from_another_bundle_fails(sealed, site):
    other, _, _ = core_bundle(result_fixture("blocked"), site)
    bundle = json.loads(sealed[1])
    bundle["dsseEnvelope"]["signatures"] = other["dsseEnvelope"]["signatures"]
    assert failing(bundle_dumps(bundle), site) == ["signature"]


def test_a_truncated_inclusion_proof_fails(sealed, site):
    bundle = json.loads(sealed[1])
    head, _, note = bundle["ledger"]["tlog_proof"].partition("\n\n")
    lines = head.split("\n")
    assert len(lines) > 3, "fixture must have a proof with several hashes"
    bundle["ledger"]["tlog_proof"] = "\n".join(lines[:-1]) + "\n\n" + note
    assert failing(bundle_dumps(bundle), site) == ["inclusion"]


def test_replacing_the_key_and_resigning_everything_fails_against_the_site_key(site):
    attacker = SigningKey.generate()
    result = result_fixture("needs_approval")
    result["verdict"] = "ship_ready"  # the point of the forgery
    forged, data, _ = core_bundle(result, attacker)
    assert failing(data, site) == ["signature"]
    # Trusting whatever key the bundle carries would accept it: that is why the verifier
    # needs the site key from elsewhere, and says so when told to trust the embedded one.
    checks = verify_bytes(data, {}, trust_embedded=True)
    assert all(c.ok for c in checks)
    assert "compare out of band" in checks[2].detail


def test_a_changed_statement_with_a_recomputed_digest_fails_the_signature(sealed, site):
    bundle = json.loads(sealed[1])
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["verdict"] = "ship_ready"
    stranger = SigningKey.generate()
    envelope, digest = statement_seal(statement, stranger)
    bundle["dsseEnvelope"]["payload"] = envelope["payload"]
    bundle["digest"] = digest
    assert failing(bundle_dumps(bundle), site) == ["signature"]


def test_a_relabelled_keyid_fails(sealed, site):
    bundle = json.loads(sealed[1])
    bundle["dsseEnvelope"]["signatures"][0]["keyid"] = "0" * 32
    assert failing(bundle_dumps(bundle), site) == ["signature"]


def test_a_forged_checkpoint_fails(sealed, site):
    bundle = json.loads(sealed[1])
    head, _, note = bundle["ledger"]["tlog_proof"].partition("\n\n")
    origin, size, rest = note.split("\n", 2)
    bundle["ledger"]["tlog_proof"] = head + "\n\n" + "\n".join([origin, str(int(size) + 1), rest])
    assert failing(bundle_dumps(bundle), site) == ["checkpoint"]


def test_another_logs_origin_fails(sealed, site):
    assert failing(sealed[1], site, origin="someone.else/log") == ["checkpoint"]


def test_a_changed_lab_file_inside_the_statement_is_caught_even_if_resigned(site):
    # The signer itself cannot make inconsistent subjects look fine.
    bundle, _, statement = core_bundle(result_fixture("needs_approval"), site)
    statement["predicate"]["inputs"]["lab"]["files"]["r1/frr.conf"]["text"] += "! edited\n"
    envelope, digest = statement_seal(statement, site)
    bundle.update(dsseEnvelope=envelope, digest=digest)
    assert "subjects" in failing(bundle_dumps(bundle), site)


def test_no_trusted_key_at_all_is_a_failure_not_a_pass(sealed):
    checks = verify_bytes(sealed[1], {})
    assert [c.name for c in checks if not c.ok] == ["trusted-keys"]


@pytest.mark.parametrize(
    "junk", [b"", b"{}", b"not json", b"%PDF-1.7\n%%EOF\n", json.dumps({"format": "x"}).encode()]
)
def test_junk_input_fails_on_the_first_check(junk, site):
    assert failing(junk, site) == ["bundle-file"]


def test_the_script_runs_without_django_and_reports_through_its_exit_status(sealed, site, tmp_path):
    (tmp_path / "bundle.json").write_bytes(sealed[1])
    (tmp_path / "site.pem").write_text(site.public_pem())
    tampered = bytearray(sealed[1])
    tampered[len(tampered) // 2] ^= 1
    (tmp_path / "bad.json").write_bytes(bytes(tampered))
    # A copy outside the repository, with an environment that names no Django settings:
    # exactly what an examiner has after saving the attachment.
    script = tmp_path / "verify_standalone.py"
    script.write_bytes((REPO / "evidence" / "verify_standalone.py").read_bytes())
    env = {"PATH": "/usr/bin:/bin"}

    def run(*args):
        return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=60)  # fmt: skip

    ok = run("bundle.json", "--key", "site.pem")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED: all 10 checks hold" in ok.stdout
    bad = run("bad.json", "--key", "site.pem")
    assert bad.returncode == 1 and "NOT VERIFIED: failing check:" in bad.stdout
    usage = run("/nonexistent.json")
    assert usage.returncode == 2 and "error:" in usage.stderr
    imports = subprocess.run(
        [sys.executable, "-c", "import sys, verify_standalone; print(sorted(m for m in sys.modules if 'django' in m))"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert imports.stdout.strip() == "[]", imports.stdout + imports.stderr


def test_hostile_input_ends_in_fail_not_a_traceback(site):
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads recursion
    assert failing(deep, site) == ["bundle-file"]
    bomb = (
        b"%PDF-1.7\n1 0 obj\n<< /Length 1 >>\nstream\n"
        + zlib.compress(b"\0" * 70_000_000)
        + (b"\nendstream\nendobj\n%%EOF\n")
    )
    assert failing(bomb, site) == ["bundle-file"]  # inflating stops at the bound
