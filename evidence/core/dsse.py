"""DSSE v1 envelopes (secure-systems-lab/dsse): sign and verify exact bytes.

Signature = Ed25519(PAE(payloadType, body)). The `keyid` in an envelope is only a hint
(the spec says so); verification tries every trusted key. AEGIS additionally requires that
a signature's keyid, when present, names the key that verified it, so a relabelled
signature is reported instead of silently accepted.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.core.keys import SigningKey, keyid_of

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class SignatureError(ValueError):
    """An envelope that does not verify; the message says why."""


def pae(payload_type: str, body: bytes) -> bytes:
    """Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(body), body)


def dsse_sign(payload_type: str, body: bytes, key: SigningKey) -> dict[str, Any]:
    """A DSSE envelope over `body`, signed by `key` (standard base64)."""
    signature = key.sign(pae(payload_type, body))
    return {
        "payload": base64.b64encode(body).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [{"keyid": key.keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }


def b64decode_any(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE verifiers must accept either)."""
    if not isinstance(text, str):
        raise SignatureError("base64 field is not a string")
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"invalid base64: {exc}") from exc


def dsse_verify(
    envelope: dict[str, Any],
    trusted: dict[str, Ed25519PublicKey],
    *,
    payload_type: str | None = None,
    threshold: int = 1,
    strict: bool = False,
) -> bytes:
    """The payload bytes, if at least `threshold` distinct trusted keys signed it.

    Signatures by keys not in `trusted` are ignored (a co-signer this verifier does not
    know), unless `strict`: then every signature must verify with a trusted key. A signature
    whose keyid names a different key than the one that verified it always fails.
    Raises SignatureError naming what failed. `payload_type`, when given, must match.
    """
    if not isinstance(envelope, dict):
        raise SignatureError("envelope is not a JSON object")
    for field in ("payload", "payloadType", "signatures"):
        if field not in envelope:
            raise SignatureError(f"envelope has no '{field}'")
    ptype = envelope["payloadType"]
    if not isinstance(ptype, str):
        raise SignatureError("payloadType is not a string")
    body = b64decode_any(envelope["payload"])
    sigs = envelope["signatures"]
    if not isinstance(sigs, list) or not sigs:
        raise SignatureError("envelope carries no signatures")
    message = pae(ptype, body)
    verified_by: set[str] = set()
    problems: list[str] = []
    unknown: list[str] = []
    for entry in sigs:
        if not isinstance(entry, dict) or "sig" not in entry:
            raise SignatureError("signature entry has no 'sig'")
        raw = b64decode_any(entry["sig"])
        hint = entry.get("keyid")
        matched = None
        for key in trusted.values():
            try:
                key.verify(raw, message)
            except InvalidSignature:
                continue
            matched = keyid_of(key)
            break
        if matched is None:
            unknown.append(f"signature with keyid {hint!r} verifies with no trusted key")
            continue
        if hint not in (None, "", matched):
            problems.append(f"signature labelled keyid {hint!r} was made by key {matched}")
            continue
        verified_by.add(matched)
    if problems:
        # A valid signature beside a relabelled one is still tampering.
        raise SignatureError("; ".join(problems))
    if strict and unknown:
        raise SignatureError("; ".join(unknown))
    if len(verified_by) < threshold:
        detail = "; ".join(unknown) or "no signature verified"
        raise SignatureError(f"{len(verified_by)} of {threshold} required trusted signatures: {detail}")
    if payload_type is not None and ptype != payload_type:
        raise SignatureError(f"payloadType {ptype!r}, expected {payload_type!r}")
    return body
