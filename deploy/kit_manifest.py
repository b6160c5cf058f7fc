"""The offline kit's manifest: sha256 of every file, signed with the site's Ed25519 key.

    python deploy/kit_manifest.py sign KIT --key SITE_KEY.pem      # writes MANIFEST.sha256 + .sig
    python deploy/kit_manifest.py verify KIT --trusted-key PUB.pem # exit 0 only if all holds

The manifest is `sha256sum` output (so `sha256sum -c` checks it on any host); the signature is
a raw 64-byte Ed25519 signature over the manifest's bytes (so `openssl pkeyutl -verify -rawin`
checks it on a host without Python). Keys are the evidence tooling's (evidence/core/keys.py):
the same PEM files, the same key ids. Django-free.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.exceptions import InvalidSignature  # noqa: E402

from evidence.core.keys import (  # noqa: E402
    KeyFileError,
    keyid_of,
    public_key_from_pem,
    signing_key_load_or_create,
)

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"
SIGNER_PUBLIC_KEY = "kit-signing-key.pem"
# Files of the manifest itself are the only ones it does not list.
UNLISTED = {MANIFEST, SIGNATURE}


def kit_files(kit: Path) -> list[str]:
    """Every regular file under the kit, relative, sorted (byte order: the same on every host)."""
    out = []
    for path in kit.rglob("*"):
        if path.is_symlink():
            raise ValueError(f"{path}: a kit holds no symbolic links (they could point outside it)")
        if path.is_file():
            rel = path.relative_to(kit).as_posix()
            if rel not in UNLISTED:
                out.append(rel)
    return sorted(out, key=lambda s: s.encode())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_text(kit: Path) -> str:
    return "".join(f"{file_sha256(kit / rel)}  {rel}\n" for rel in kit_files(kit))


def kit_sign(kit: Path, key_file: Path) -> str:
    """Write the manifest, its signature and the signer's public key; return the key id."""
    key = signing_key_load_or_create(key_file)
    (kit / SIGNER_PUBLIC_KEY).write_text(key.public_pem())
    text = manifest_text(kit).encode()
    (kit / MANIFEST).write_bytes(text)
    (kit / SIGNATURE).write_bytes(key.sign(text))
    return key.keyid


def kit_verify(kit: Path, trusted_pem: bytes) -> list[str]:
    """Problems with the kit (empty: the kit is exactly what the trusted key signed)."""
    public_key = public_key_from_pem(trusted_pem)
    try:
        text = (kit / MANIFEST).read_bytes()
        signature = (kit / SIGNATURE).read_bytes()
    except FileNotFoundError as exc:
        return [f"missing {Path(exc.filename).name}: not a signed kit"]
    try:
        public_key.verify(signature, text)
    except InvalidSignature:
        return [f"the manifest's signature does not verify with the trusted key {keyid_of(public_key)}"]
    listed: dict[str, str] = {}
    for line in text.decode().splitlines():
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
    problems = []
    present = set(kit_files(kit))
    problems += [f"{rel}: not in the signed manifest" for rel in sorted(present - listed.keys())]
    problems += [f"{rel}: listed but missing" for rel in sorted(listed.keys() - present)]
    for rel in sorted(present & listed.keys()):
        if file_sha256(kit / rel) != listed[rel]:
            problems.append(f"{rel}: sha256 differs from the signed manifest")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sign")
    s.add_argument("kit", type=Path)
    s.add_argument("--key", type=Path, required=True, help="the site's Ed25519 key (PEM, created if absent)")
    v = sub.add_parser("verify")
    v.add_argument("kit", type=Path)
    v.add_argument("--trusted-key", type=Path, required=True, help="the public key the kit must be signed with")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "sign":
            keyid = kit_sign(args.kit, args.key)
            print(f"signed {args.kit / MANIFEST} with key {keyid}")
            return 0
        problems = kit_verify(args.kit, args.trusted_key.read_bytes())
    except (KeyFileError, OSError, ValueError) as exc:
        print(f"kit: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"REFUSED: {p}", file=sys.stderr)
    if not problems:
        print(f"kit verified: every file matches the manifest signed by {args.trusted_key}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
