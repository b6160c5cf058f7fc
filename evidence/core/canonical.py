"""The exact bytes that are hashed and signed: RFC 8785 (JSON Canonicalization Scheme)."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from aegis_base.core.files import sha256_digest


class CanonicalError(ValueError):
    """A value that has no canonical JSON form (NaN, infinity, a non-JSON type)."""


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 bytes of a JSON-able value: sorted keys, no whitespace, ES6 number form."""
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalError(f"cannot canonicalize: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of `data` (no algorithm prefix)."""
    return hashlib.sha256(data).hexdigest()


# `sha256:<hex>`, the form digests take in result documents and bundles: the one helper,
# aegis_base.core.files.sha256_digest, under the name the evidence code has always used.
digest_str = sha256_digest
