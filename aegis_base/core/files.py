"""The one atomic file write and the one `sha256:<hex>` digest of AEGIS (Django-free).

Everything AEGIS writes for someone else to read (result.json, bundle.json, report.pdf, an
OSCAL export) is written beside its target and renamed over it, so a reader never sees half a
file and a failure leaves the old one. (The twin below this layer keeps its own small state
writer; private keys are created exclusively by evidence/core/keys.py.)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: str | Path, data: bytes | str, *, mode: int = 0o644) -> Path:
    """Write `data` (text as UTF-8) to `path` whole or not at all, with permissions `mode`; returns the path.

    The folder must exist. Raises OSError; the temporary file is removed then.
    """
    path = Path(path)
    body = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sha256_digest(data: bytes | str) -> str:
    """`sha256:<hex>` of bytes (text as UTF-8): the form digests take in results, bundles and records."""
    body = data.encode("utf-8") if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(body).hexdigest()
