"""C2SP checkpoints as signed notes, and the offline `c2sp.org/tlog-proof@v1` file.

Checkpoint body::

    <origin>\\n<tree size>\\n<base64 root hash>\\n

Signed note: the body, a blank line, then one line per signature
`— <key name> base64(4-byte key id || 64-byte Ed25519 signature)`; the key id is
SHA-256(key name || 0x0A || 0x01 || raw public key)[:4] (C2SP signed-note, type 0x01).
A verifier ignores signatures by keys it does not know, rejects the note if a known
key's signature fails, and accepts it only when at least one known key verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.core.keys import SigningKey

EM_DASH = "\u2014"
PROOF_HEADER = "c2sp.org/tlog-proof@v1"


class CheckpointError(ValueError):
    """A checkpoint or proof file that is malformed or does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    note: str = ""  # the signed note text, when parsed from one
    verified_by: tuple[str, ...] = field(default=())  # key names whose signatures verified

    def body(self) -> str:
        return checkpoint_body(self.origin, self.size, self.root_hash)


def checkpoint_body(origin: str, size: int, root_hash: bytes) -> str:
    if not origin or "\n" in origin:
        raise CheckpointError("origin must be one non-empty line")
    if size < 0:
        raise CheckpointError("tree size cannot be negative")
    return f"{origin}\n{size}\n{base64.b64encode(root_hash).decode('ascii')}\n"


def note_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n\x01" + public_key.public_bytes_raw()).digest()[:4]


def checkpoint_sign(
    origin: str, size: int, root_hash: bytes, key: SigningKey, key_name: str | None = None
) -> str:
    """The signed-note text of a checkpoint, signed by `key` under `key_name` (default: origin)."""
    name = key_name or origin
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise CheckpointError(f"key name {name!r} must be non-empty, without spaces or '+'")
    body = checkpoint_body(origin, size, root_hash)
    sig = key.sign(body.encode("utf-8"))
    blob = base64.b64encode(note_key_id(name, key.public_key) + sig).decode("ascii")
    return f"{body}\n{EM_DASH} {name} {blob}\n"


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    if "\n\n" not in note or not note.endswith("\n"):
        raise CheckpointError("not a signed note: no blank line before the signatures")
    body, _, sig_block = note.partition("\n\n")
    body += "\n"
    sigs: list[tuple[str, bytes, bytes]] = []
    for line in sig_block.rstrip("\n").split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH:
            raise CheckpointError(f"malformed signature line: {line!r}")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CheckpointError(f"signature line is not base64: {line!r}") from exc
        if len(raw) < 5:
            raise CheckpointError(f"signature too short: {line!r}")
        sigs.append((parts[1], raw[:4], raw[4:]))
    if not sigs:
        raise CheckpointError("signed note carries no signatures")
    return body, sigs


def checkpoint_parse(note: str) -> Checkpoint:
    """The checkpoint in a signed note, without checking signatures."""
    body, _ = _split_note(note)
    lines = body.split("\n")
    if len(lines) < 4:
        raise CheckpointError("checkpoint body needs origin, size and root hash lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise CheckpointError(f"tree size {size_s!r} is not a decimal number")
    try:
        root_hash = base64.b64decode(root_s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError("root hash line is not base64") from exc
    if len(root_hash) != 32:
        raise CheckpointError("root hash is not 32 bytes")
    return Checkpoint(origin=origin, size=int(size_s), root_hash=root_hash, note=note)


def checkpoint_verify(note: str, trusted: list[Ed25519PublicKey], *, origin: str | None = None) -> Checkpoint:
    """Parse and verify a signed checkpoint against trusted public keys (any key name)."""
    cp = checkpoint_parse(note)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r}, expected {origin!r}")
    body, sigs = _split_note(note)
    verified: list[str] = []
    for name, kid, sig in sigs:
        for key in trusted:
            if note_key_id(name, key) != kid:
                continue  # not this key; unknown keys are ignored by design
            try:
                key.verify(sig, body.encode("utf-8"))
            except InvalidSignature as exc:
                raise CheckpointError(f"signature by known key {name!r} does not verify") from exc
            verified.append(name)
    if not verified:
        raise CheckpointError("no trusted key signed this checkpoint")
    return Checkpoint(cp.origin, cp.size, cp.root_hash, note, tuple(verified))


# ---- the offline proof file ---------------------------------------------------------


def tlog_proof_format(index: int, proof: list[bytes], checkpoint_note: str) -> str:
    lines = [PROOF_HEADER, f"index {index}"] + [base64.b64encode(p).decode("ascii") for p in proof]
    return "\n".join(lines) + "\n\n" + checkpoint_note


def tlog_proof_parse(text: str) -> tuple[int, list[bytes], str]:
    """(leaf index, inclusion proof hashes, checkpoint note) of a tlog-proof file."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise CheckpointError("proof file has no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != PROOF_HEADER:
        raise CheckpointError(f"proof file does not start with {PROOF_HEADER}")
    rest = lines[1:]
    if rest and rest[0].startswith("extra "):
        rest = rest[1:]  # unauthenticated extra data: ignored
    if not rest or not rest[0].startswith("index ") or not rest[0][6:].isdigit():
        raise CheckpointError("proof file has no 'index N' line")
    index = int(rest[0][6:])
    hashes: list[bytes] = []
    for line in rest[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CheckpointError(f"proof hash line is not base64: {line!r}") from exc
        if len(h) != 32:
            raise CheckpointError("proof hash is not 32 bytes")
        hashes.append(h)
    return index, hashes, note


# ---- witness cosignatures (C2SP tlog-cosignature, type 0x04: timestamped Ed25519) ---------


def cosignature_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n\x04" + public_key.public_bytes_raw()).digest()[:4]


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode("utf-8")


def cosignature_sign(note: str, key: SigningKey, name: str, timestamp: int) -> str:
    """A witness's signature line over the checkpoint in `note` (whose signatures it checked)."""
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise CheckpointError(f"witness name {name!r} must be non-empty, without spaces or '+'")
    body, _ = _split_note(note)
    sig = key.sign(_cosigned_message(body, timestamp))
    blob = cosignature_key_id(name, key.public_key) + timestamp.to_bytes(8, "big") + sig
    return f"{EM_DASH} {name} {base64.b64encode(blob).decode('ascii')}\n"


def cosignature_verify(note: str, line: str, name: str, public_key: Ed25519PublicKey) -> int:
    """The witness's timestamp if `line` is its valid cosignature of the checkpoint in `note`."""
    body, _ = _split_note(note)
    parts = line.rstrip("\n").split(" ")
    if len(parts) != 3 or parts[0] != EM_DASH or parts[1] != name:
        raise CheckpointError(f"not a cosignature line by {name!r}")
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError("cosignature is not base64") from exc
    if len(raw) != 4 + 8 + 64 or raw[:4] != cosignature_key_id(name, public_key):
        raise CheckpointError(f"cosignature is not by witness key {name!r}")
    timestamp = int.from_bytes(raw[4:12], "big")
    try:
        public_key.verify(raw[12:], _cosigned_message(body, timestamp))
    except InvalidSignature as exc:
        raise CheckpointError(f"cosignature by {name!r} does not verify") from exc
    return timestamp
