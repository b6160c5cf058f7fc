"""Approval tokens and per-user keys (promote/core/approvals.py)."""

from __future__ import annotations

import base64
import copy
import json
import os

import pytest

from evidence.core.dsse import dsse_verify
from promote.core.approvals import (
    PREDICATE_TYPE,
    ApprovalError,
    KeyEncryptionError,
    approval_sign,
    approval_statement,
    approval_verify,
    approver_key_for,
    approver_key_generate,
    approver_keyring,
    kek_parse,
    private_key_decrypt,
    private_key_encrypt,
)
from promote.tests.bundles import NOW, Approver

DIGEST = "sha256:" + "ab" * 32


def test_kek_accepts_base64_and_hex_and_explains_bad_values():
    raw = os.urandom(32)
    assert kek_parse(base64.b64encode(raw).decode()) == raw
    assert kek_parse(raw.hex()) == raw
    for bad in ("", "short", base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(KeyEncryptionError, match="AEGIS_KEY_ENCRYPTION_KEY"):
            kek_parse(bad)


def test_private_key_round_trip_and_binding():
    kek = os.urandom(32)
    key = approver_key_generate()
    blob = private_key_encrypt(key, kek, username="alice")
    assert key.private_key.private_bytes_raw().hex() not in blob  # encrypted at rest
    again = private_key_decrypt(blob, kek, username="alice")
    assert again.keyid == key.keyid
    assert again.sign(b"x") == key.sign(b"x")  # Ed25519 is deterministic: same key


def test_private_key_refused_for_other_user_wrong_kek_or_altered():
    kek = os.urandom(32)
    blob = private_key_encrypt(approver_key_generate(), kek, username="alice")
    with pytest.raises(KeyEncryptionError, match="does not belong to bob"):
        private_key_decrypt(blob, kek, username="bob")
    with pytest.raises(KeyEncryptionError, match="another key-encryption key"):
        private_key_decrypt(blob, os.urandom(32), username="alice")
    doc = json.loads(blob)
    ct = bytearray(base64.b64decode(doc["ciphertext"]))
    ct[0] ^= 1
    doc["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    with pytest.raises(KeyEncryptionError, match="altered"):
        private_key_decrypt(json.dumps(doc), kek, username="alice")


def test_statement_is_in_toto_human_review_bound_to_the_bundle():
    st = approval_statement(
        bundle_digest=DIGEST,
        run_id="run1",
        approver="alice",
        role="approver",
        decision="approve",
        comment="looks right",
        issued_at=NOW,
        ttl_s=600,
        operator="olivia",
    )
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == PREDICATE_TYPE
    assert st["subject"][0]["digest"] == {"sha256": "ab" * 32}
    assert st["predicate"]["result"] == "pass"
    a = st["predicate"]["aegis"]
    assert (a["issued_at"], a["expires_at"]) == ("2026-11-25T20:00:00Z", "2026-11-25T20:10:00Z")
    assert len(a["jti"]) == 32
    other = approval_statement(
        bundle_digest=DIGEST,
        run_id="run1",
        approver="alice",
        role="approver",
        decision="approve",
        issued_at=NOW,
        ttl_s=600,
    )
    assert other["predicate"]["aegis"]["jti"] != a["jti"], "every approval gets its own single-use id"


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("bundle_digest", "sha256:short", "bundle digest"),
        ("decision", "yes", "decision"),
        ("ttl_s", 0, "lifetime"),
    ],
)
def test_statement_refuses_bad_input(field, value, match):
    kwargs = dict(
        bundle_digest=DIGEST,
        run_id="r",
        approver="a",
        role="approver",
        decision="approve",
        issued_at=NOW,
        ttl_s=60,
    )
    kwargs[field] = value
    with pytest.raises(ApprovalError, match=match):
        approval_statement(**kwargs)


def test_verify_returns_claims_and_is_standard_dsse():
    alice = Approver("alice")
    env = alice.approve({"digest": DIGEST})
    ring = approver_keyring([alice.registered])
    claims = approval_verify(env, ring)
    assert (claims.approver, claims.decision, claims.bundle_digest) == ("alice", "approve", DIGEST)
    # any DSSE verifier with alice's public key accepts it
    assert (
        json.loads(dsse_verify(env, {alice.key.keyid: alice.key.public_key}))["predicateType"]
        == PREDICATE_TYPE
    )


def test_verify_refuses_unknown_key_tampering_and_impersonation():
    alice, mallory = Approver("alice"), Approver("mallory")
    ring = approver_keyring([alice.registered, mallory.registered])
    env = alice.approve({"digest": DIGEST})
    with pytest.raises(ApprovalError, match="does not verify"):
        approval_verify(env, approver_keyring([mallory.registered]))
    bad = copy.deepcopy(env)
    st = json.loads(base64.b64decode(bad["payload"]))
    st["predicate"]["aegis"]["expires_at"] = "2099-01-01T00:00:00Z"
    bad["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    with pytest.raises(ApprovalError, match="does not verify"):
        approval_verify(bad, ring)
    # mallory signs a statement that claims to be alice's approval
    forged = approval_statement(
        bundle_digest=DIGEST,
        run_id="r",
        approver="alice",
        role="approver",
        decision="approve",
        issued_at=NOW,
        ttl_s=60,
    )
    with pytest.raises(ApprovalError, match="signed with the key of mallory"):
        approval_verify(approval_sign(forged, mallory.key), ring)


def test_verify_refuses_envelopes_that_are_not_approvals():
    with pytest.raises(ApprovalError, match="not a DSSE envelope"):
        approval_verify({"payload": "x"}, {})
    alice = Approver("alice")
    env = alice.approve({"digest": DIGEST})
    env["signatures"].append(dict(env["signatures"][0]))
    with pytest.raises(ApprovalError, match="exactly one signature"):
        approval_verify(env, approver_keyring([alice.registered]))


def test_approver_key_is_created_on_first_use_and_reused_after():
    kek = os.urandom(32)
    key, blob = approver_key_for("alice", kek, None)
    assert blob is not None, "first use: a new encrypted key to store"
    again, nothing = approver_key_for("alice", kek, blob)
    assert nothing is None and again.keyid == key.keyid
