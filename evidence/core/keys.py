"""Ed25519 signing keys: the site key that seals bundles, and the keyring that verifies them.

The private key lives in one PEM file (PKCS#8, unencrypted) readable only by the AEGIS
user (mode 0600); its path comes from settings (`AEGIS_SITE_KEY_FILE`). A key id is the
first 32 hex digits of SHA-256 over the raw 32-byte public key, so anyone holding the
public key can recompute it. Rotation moves the old private key aside and keeps its public
key in the trusted keyring, so bundles sealed before the rotation still verify.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(ValueError):
    """A key file that cannot be used; the message says which file and what to do."""


def keyid_of(public_key: Ed25519PublicKey) -> str:
    """32 hex digits of SHA-256 over the raw public key: short, recomputable, unambiguous."""
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()[:32]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_key_from_pem(pem: str | bytes) -> Ed25519PublicKey:
    """Parse a SubjectPublicKeyInfo PEM; raises KeyFileError unless it is an Ed25519 key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key with its key id."""

    private_key: Ed25519PrivateKey
    keyid: str

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey) -> SigningKey:
        return cls(private_key=private_key, keyid=keyid_of(private_key.public_key()))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private_key(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> str:
        return public_key_pem(self.public_key)


def _check_private_file_mode(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: the site key is readable by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}` and make it owned by the AEGIS user"
        )


def signing_key_load(path: str | Path) -> SigningKey:
    """Load an existing PKCS#8 PEM Ed25519 private key; refuses group/other-readable files."""
    path = Path(path)
    try:
        _check_private_file_mode(path)
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: no such key file") from exc
    except PermissionError as exc:
        raise KeyFileError(f"{path}: cannot read the key file ({exc.strerror})") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 private key, got {type(key).__name__}")
    return SigningKey.from_private_key(key)


def _write_new_private_file(path: Path, key: SigningKey) -> bool:
    """Write `key` to `path` with mode 0600 unless the path exists. True when written.

    The key is written to a temporary file in the same directory and hard-linked into
    place: link() fails if the name exists, so two processes starting at once never
    overwrite each other and never read a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".aegis-key-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_pem())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def signing_key_load_or_create(path: str | Path) -> SigningKey:
    """The site key at `path`; generated (mode 0600) on first use."""
    path = Path(path)
    if not path.exists():
        _write_new_private_file(path, SigningKey.generate())
    return signing_key_load(path)


# ---- the trusted keyring: one PEM public key per file, named <keyid>.pub.pem ----------


def keyring_add(keyring_dir: str | Path, public_key: Ed25519PublicKey) -> Path:
    """Store a public key in the keyring (idempotent). Returns its file."""
    keyring_dir = Path(keyring_dir)
    keyring_dir.mkdir(parents=True, exist_ok=True)
    target = keyring_dir / f"{keyid_of(public_key)}.pub.pem"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        tmp.write_text(public_key_pem(public_key))
        os.replace(tmp, target)
    return target


def keyring_load(keyring_dir: str | Path) -> dict[str, Ed25519PublicKey]:
    """Every public key in the keyring, by key id (recomputed from the key, not the file name)."""
    keys: dict[str, Ed25519PublicKey] = {}
    keyring_dir = Path(keyring_dir)
    if not keyring_dir.is_dir():
        return keys
    for file in sorted(keyring_dir.glob("*.pem")):
        try:
            key = public_key_from_pem(file.read_bytes())
        except KeyFileError as exc:
            raise KeyFileError(f"{file}: {exc}") from exc
        keys[keyid_of(key)] = key
    return keys


def signing_key_rotate(path: str | Path, keyring_dir: str | Path) -> tuple[SigningKey, SigningKey]:
    """Replace the site key by a new one; the old public key stays trusted. Returns (old, new).

    The old private key is kept beside the new one as `<name>.retired-<keyid>-<utc time>`
    (mode 0600) so an operator can destroy it deliberately; nothing is deleted here.
    """
    path = Path(path)
    old = signing_key_load(path)
    keyring_add(keyring_dir, old.public_key)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    retired = path.with_name(f"{path.name}.retired-{old.keyid}-{stamp}")
    os.replace(path, retired)
    new = SigningKey.generate()
    if not _write_new_private_file(path, new):
        raise KeyFileError(f"{path}: another process created a key during rotation; check the key directory")
    keyring_add(keyring_dir, new.public_key)
    return old, new
