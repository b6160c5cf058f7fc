"""Signed approvals: an in-toto Statement (human-review predicate) in a DSSE envelope.

One approval is one approver's decision on one sealed bundle. The statement's subject is
the bundle's seal digest, so the approval cannot be moved to another bundle (a re-run
yields a new digest and needs a new approval). The predicate carries who decided, in which
role, when, until when it may be used, and a single-use id (`jti`) that the gate refuses to
see twice. It is signed with the approver's *own* Ed25519 key, not the site key, so an
approval proves which person decided (AU-10 non-repudiation).

Per-user keys: AEGIS creates an approver's key pair on first use and stores the private key
encrypted at rest with AES-256-GCM under a key-encryption key (KEK) from settings
(`AEGIS_KEY_ENCRYPTION_KEY`, 32 random bytes in base64). The associated data binds the
ciphertext to the username and key id, so a stored key copied onto another user's row does
not decrypt. This module holds the pure functions; where the rows live is the web shell's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from evidence.core.canonical import canonical_bytes
from evidence.core.dsse import IN_TOTO_PAYLOAD_TYPE, SignatureError, b64decode_any, dsse_sign, dsse_verify
from evidence.core.keys import SigningKey, keyid_of

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/human-review/v0.1"
APPROVAL_FORMAT = "aegis.approval/v1"
ENCRYPTED_KEY_FORMAT = "aegis.approver-key/v1"
KEK_BYTES = 32
KEK_HOWTO = (
    'generate one with: python3 -c "import base64, secrets; '
    'print(base64.b64encode(secrets.token_bytes(32)).decode())"'
)


class ApprovalError(ValueError):
    """An approval token that cannot be trusted or used; the message says why."""


class KeyEncryptionError(ValueError):
    """A KEK or an encrypted private key that cannot be used; the message says what to fix."""


# ---- time --------------------------------------------------------------------------------


def utc_iso(moment: datetime) -> str:
    """RFC 3339 UTC with a Z, second precision: the only time form in approvals."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC datetime")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError) as exc:
        raise ApprovalError(f"time {text!r} is not of the form 2026-11-25T19:30:00Z") from exc
    return moment.replace(tzinfo=UTC)


# ---- per-user keys -----------------------------------------------------------------------


def kek_parse(text: str) -> bytes:
    """The 32-byte KEK from its settings form (base64, or 64 hex digits)."""
    raw = (text or "").strip()
    if not raw:
        raise KeyEncryptionError(f"AEGIS_KEY_ENCRYPTION_KEY is not set; {KEK_HOWTO}")
    data: bytes | None = None
    if len(raw) == 2 * KEK_BYTES and all(c in "0123456789abcdefABCDEF" for c in raw):
        data = bytes.fromhex(raw)
    else:
        try:
            data = b64decode_any(raw)
        except SignatureError:
            data = None
    if data is None or len(data) != KEK_BYTES:
        raise KeyEncryptionError(
            f"AEGIS_KEY_ENCRYPTION_KEY must be {KEK_BYTES} random bytes in base64 or hex; {KEK_HOWTO}"
        )
    return data


def kek_id(kek: bytes) -> str:
    """A short fingerprint of a KEK, stored with each encrypted key to explain a mismatch."""
    return hashlib.sha256(b"aegis-kek-id/v1" + kek).hexdigest()[:16]


def approver_key_generate() -> SigningKey:
    """A fresh Ed25519 key pair for one approver."""
    return SigningKey.generate()


def _aad(username: str, keyid: str) -> bytes:
    return f"{ENCRYPTED_KEY_FORMAT}\n{username}\n{keyid}\n".encode()


def private_key_encrypt(key: SigningKey, kek: bytes, *, username: str) -> str:
    """The private key encrypted under the KEK (AES-256-GCM), as a JSON text for one DB field."""
    if len(kek) != KEK_BYTES:
        raise KeyEncryptionError(f"KEK must be {KEK_BYTES} bytes")
    nonce = os.urandom(12)
    raw = key.private_key.private_bytes_raw()
    ct = AESGCM(kek).encrypt(nonce, raw, _aad(username, key.keyid))
    return json.dumps(
        {
            "format": ENCRYPTED_KEY_FORMAT,
            "alg": "AES-256-GCM",
            "username": username,
            "keyid": key.keyid,
            "kek_id": kek_id(kek),
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ct).decode(),
        },
        sort_keys=True,
    )


def private_key_decrypt(blob: str, kek: bytes, *, username: str) -> SigningKey:
    """The approver's signing key, if `blob` is theirs and was encrypted under this KEK."""
    try:
        doc = json.loads(blob)
        nonce = base64.b64decode(doc["nonce"], validate=True)
        ct = base64.b64decode(doc["ciphertext"], validate=True)
        keyid = str(doc["keyid"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KeyEncryptionError(
            f"stored key of {username} is not an {ENCRYPTED_KEY_FORMAT} document"
        ) from exc
    if doc.get("format") != ENCRYPTED_KEY_FORMAT:
        raise KeyEncryptionError(f"stored key of {username}: unknown format {doc.get('format')!r}")
    if doc.get("kek_id") != kek_id(kek):
        raise KeyEncryptionError(
            f"stored key of {username} was encrypted under another key-encryption key (kek id {doc.get('kek_id')}, "
            f"configured {kek_id(kek)}); restore the KEK it was made with, or have the approver get a new key"
        )
    try:
        raw = AESGCM(kek).decrypt(nonce, ct, _aad(username, keyid))
    except InvalidTag as exc:
        raise KeyEncryptionError(
            f"stored key does not belong to {username} or was altered; refusing to use it"
        ) from exc
    key = SigningKey.from_private_key(Ed25519PrivateKey.from_private_bytes(raw))
    if key.keyid != keyid:
        raise KeyEncryptionError(f"stored key of {username}: key id mismatch")
    return key


def approver_key_for(username: str, kek: bytes, stored: str | None) -> tuple[SigningKey, str | None]:
    """The approver's signing key; created on first use (`stored` is None).

    Returns (key, blob to store): the blob is the new encrypted private key when one was just
    created, else None (nothing to write). The shell keeps the blob and the public key per user.
    """
    if stored is None:
        key = approver_key_generate()
        return key, private_key_encrypt(key, kek, username=username)
    return private_key_decrypt(stored, kek, username=username), None


@dataclass(frozen=True)
class ApproverKey:
    """A public key AEGIS holds for one approver (the registry the gate trusts)."""

    username: str
    public_key: Ed25519PublicKey

    @property
    def keyid(self) -> str:
        return keyid_of(self.public_key)


def approver_keyring(keys: list[ApproverKey]) -> dict[str, ApproverKey]:
    return {k.keyid: k for k in keys}


# ---- statements --------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalClaims:
    """What a verified approval says."""

    jti: str
    bundle_digest: str
    run_id: str | None
    approver: str
    role: str
    decision: str
    comment: str
    issued_at: datetime
    expires_at: datetime
    keyid: str
    operator: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "jti": self.jti,
            "bundle_digest": self.bundle_digest,
            "run_id": self.run_id,
            "approver": self.approver,
            "role": self.role,
            "decision": self.decision,
            "comment": self.comment,
            "issued_at": utc_iso(self.issued_at),
            "expires_at": utc_iso(self.expires_at),
            "keyid": self.keyid,
            "operator": self.operator,
        }


def approval_statement(
    *,
    bundle_digest: str,
    run_id: str | None,
    approver: str,
    role: str,
    decision: str,
    comment: str = "",
    issued_at: datetime,
    ttl_s: int,
    operator: str | None = None,
    jti: str | None = None,
    review_link: str | None = None,
) -> dict[str, Any]:
    """The in-toto Statement of one decision (unsigned). Pure except for a fresh jti."""
    if not bundle_digest.startswith("sha256:") or len(bundle_digest) != 71:
        raise ApprovalError(f"bundle digest must be 'sha256:<64 hex>', got {bundle_digest!r}")
    if decision not in ("approve", "reject"):
        raise ApprovalError(f"decision must be approve or reject, got {decision!r}")
    if ttl_s <= 0:
        raise ApprovalError("approval lifetime must be positive (AEGIS_APPROVAL_TTL_S)")
    predicate: dict[str, Any] = {
        # human-review/v0.1 fields ...
        "result": "pass" if decision == "approve" else "fail",
        "timestamp": utc_iso(issued_at),
        # ... and AEGIS's own, which the gate checks.
        "aegis": {
            "format": APPROVAL_FORMAT,
            "jti": jti or uuid.uuid4().hex,
            "decision": decision,
            "comment": comment,
            "approver": {"id": approver, "role": role},
            "operator": operator,
            "run_id": run_id,
            "issued_at": utc_iso(issued_at),
            "expires_at": utc_iso(issued_at + timedelta(seconds=ttl_s)),
        },
    }
    if review_link:
        predicate["reviewLink"] = review_link
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"aegis-bundle:{run_id or 'unknown'}", "digest": {"sha256": bundle_digest[7:]}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def approval_sign(statement: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """The DSSE envelope of a statement, signed by the approver's own key."""
    return dsse_sign(IN_TOTO_PAYLOAD_TYPE, canonical_bytes(statement), key)


def approval_verify(envelope: dict[str, Any], approver_keys: dict[str, ApproverKey]) -> ApprovalClaims:
    """Check the signature and shape of an approval; return its claims.

    Verifies with the registered key of the signer and requires that the statement names
    that key's owner as the approver. Whether the approval is usable (bound to this bundle,
    unexpired, unused, not by the operator) is the gate's question, not this one's.
    """
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signatures"), list):
        raise ApprovalError("approval is not a DSSE envelope (payload, payloadType, signatures)")
    if len(envelope["signatures"]) != 1:
        raise ApprovalError("an approval carries exactly one signature (the approver's)")
    hint = envelope["signatures"][0].get("keyid") if isinstance(envelope["signatures"][0], dict) else None
    known = approver_keys.get(str(hint)) if hint else None
    # The keyid is only a hint for finding the key; the signature decides. Without a hint, try all.
    candidates = [known] if known else list(approver_keys.values())
    signer: ApproverKey | None = None
    body = b""
    last = "signed by no registered approver key"
    for cand in candidates:
        try:
            body = dsse_verify(envelope, {cand.keyid: cand.public_key}, payload_type=IN_TOTO_PAYLOAD_TYPE)
        except SignatureError as exc:
            last = str(exc)
            continue
        signer = cand
        break
    if signer is None:
        raise ApprovalError(f"approval signature does not verify: {last}")
    try:
        st = json.loads(body)
        aegis = st["predicate"]["aegis"]
        subject_hex = st["subject"][0]["digest"]["sha256"]
        claims = ApprovalClaims(
            jti=str(aegis["jti"]),
            bundle_digest="sha256:" + str(subject_hex),
            run_id=aegis.get("run_id"),
            approver=str(aegis["approver"]["id"]),
            role=str(aegis["approver"]["role"]),
            decision=str(aegis["decision"]),
            comment=str(aegis.get("comment", "")),
            issued_at=parse_utc(aegis["issued_at"]),
            expires_at=parse_utc(aegis["expires_at"]),
            keyid=signer.keyid,
            operator=aegis.get("operator"),
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ApprovalError(f"approval statement is malformed: {exc}") from exc
    if st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PREDICATE_TYPE:
        raise ApprovalError("approval is not an in-toto human-review statement")
    if aegis.get("format") != APPROVAL_FORMAT:
        raise ApprovalError(f"approval format {aegis.get('format')!r}, expected {APPROVAL_FORMAT}")
    if claims.approver != signer.username:
        raise ApprovalError(
            f"approval names {claims.approver} but was signed with the key of {signer.username}"
        )
    return claims


def approval_peek(envelope: dict[str, Any]) -> dict[str, Any]:
    """The statement inside an envelope, NOT verified (for display and error messages only)."""
    try:
        return json.loads(b64decode_any(envelope["payload"]))
    except (KeyError, TypeError, ValueError, SignatureError) as exc:
        raise ApprovalError(f"approval has no readable statement: {exc}") from exc
