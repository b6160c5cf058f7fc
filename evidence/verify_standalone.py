#!/usr/bin/env python3
"""Verify an AEGIS evidence bundle offline: Python 3.9+ and the `cryptography` package only.

    python3 verify_standalone.py bundle.json --key site-key.pub.pem
    python3 verify_standalone.py report.pdf --keyring trusted-keys/
    python3 verify_standalone.py bundle.json --trust-embedded     # then compare the printed
                                                                  # key fingerprint by phone/letter
Exit status 0 only when every check holds; 1 names the failing checks; 2 for usage errors.

Checks, in order (each line printed as PASS/FAIL):
  bundle-file       the file (or the bundle attached to the PDF) is an AEGIS bundle
  canonical-layout  the bytes are exactly the fixed layout AEGIS writes (no byte was changed)
  trusted-keys      which public keys are trusted, and that the bundle's key copies are intact
  seal-digest       SHA-256 of the signed payload equals the seal digest
  signature         DSSE v1 Ed25519 signature(s) by trusted keys, key ids matching
  statement         an in-toto Statement v1 with the AEGIS predicate and digest subjects
  subjects          subject digests match the change text and lab files inside the statement
  ledger-leaf       the ledger leaf is the hash of this bundle's seal digest
  checkpoint        the ledger checkpoint (C2SP signed note) is signed by a trusted key
  inclusion         the RFC 9162 inclusion proof puts the leaf in the checkpoint's tree

This file is deliberately independent of the AEGIS code that writes bundles, so it can be
read on its own and run on an air-gapped laptop. AEGIS's `manage.py verify_bundle` runs it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover - the examiner's laptop may lack it
    sys.stderr.write("verify_standalone: needs the 'cryptography' package (pip install cryptography)\n")
    sys.exit(2)

BUNDLE_FORMAT = "aegis.evidence.bundle/v1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://aegis.local/attestation/preflight-evidence/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
EM_DASH = "\u2014"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


class Failed(Exception):
    pass


# ---- primitives (restated from the specs: DSSE v1, RFC 9162, C2SP signed-note) ----------


def raw_public(key: Ed25519PublicKey) -> bytes:
    # public_bytes(Raw, Raw) rather than public_bytes_raw(): works with older cryptography too.
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem_text(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def keyid_of(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()[:32]


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def b64any(text: str) -> bytes:
    if not isinstance(text, str):
        raise Failed("base64 field is not a string")
    s = text.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Failed(f"invalid base64: {exc}") from exc


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def h_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def h_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list, root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index < 0 or index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = h_node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = h_node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def note_key_id(name: str, key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n\x01" + raw_public(key)).digest()[:4]


def checkpoint_verify(note: str, trusted: dict) -> tuple[str, int, bytes, list]:
    body, sep, sig_block = note.partition("\n\n")
    if not sep or not note.endswith("\n"):
        raise Failed("checkpoint is not a signed note")
    body += "\n"
    lines = body.split("\n")
    if len(lines) < 4 or not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise Failed("checkpoint body is not origin / size / root")
    origin, size = lines[0], int(lines[1])
    root = b64any(lines[2])
    if len(root) != 32:
        raise Failed("checkpoint root is not 32 bytes")
    verified = []
    for line in sig_block.rstrip("\n").split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH:
            raise Failed(f"malformed checkpoint signature line {line!r}")
        raw = b64any(parts[2])
        for kid, key in trusted.items():
            if note_key_id(parts[1], key) != raw[:4]:
                continue
            try:
                key.verify(raw[4:], body.encode("utf-8"))
            except InvalidSignature as exc:
                raise Failed(f"checkpoint signature by known key {kid} does not verify") from exc
            verified.append(kid)
    if not verified:
        raise Failed("no trusted key signed the checkpoint")
    return origin, size, root, verified


def tlog_proof_parse(text: str) -> tuple[int, list, str]:
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != PROOF_HEADER:
        raise Failed(f"ledger proof is not a {PROOF_HEADER} file")
    rest = lines[1:]
    if rest and rest[0].startswith("extra "):
        rest = rest[1:]
    if not rest or not re.fullmatch(r"index (0|[1-9][0-9]*)", rest[0]):
        raise Failed("ledger proof has no 'index N' line")
    hashes = [b64any(line) for line in rest[1:]]
    if any(len(h) != 32 for h in hashes):
        raise Failed("ledger proof hash is not 32 bytes")
    return int(rest[0][6:]), hashes, note


def bundle_layout(bundle: dict) -> bytes:
    return (json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


# ---- reading the input ------------------------------------------------------------------


def bundle_from_pdf(data: bytes) -> bytes:
    """The AEGIS bundle attached to a PDF: scan its streams (stdlib only, no PDF library)."""
    for match in re.finditer(rb"(?<!end)stream\r?\n", data):
        start = match.end()
        end = data.find(b"endstream", start)
        if end < 0:
            continue
        raw = data[start:end]
        for candidate in (raw, None):
            try:
                if candidate is None:
                    # Bounded: a hostile PDF must not inflate into gigabytes on the examiner's laptop.
                    inflater = zlib.decompressobj()
                    blob = inflater.decompress(raw, MAX_BUNDLE_BYTES)
                    if inflater.unconsumed_tail:
                        continue
                else:
                    blob = candidate
            except zlib.error:
                continue
            blob = blob.strip()
            if blob.startswith(b"{") and b'"format": "' + BUNDLE_FORMAT.encode() + b'"' in blob:
                return blob + b"\n"
    raise Failed("the PDF carries no AEGIS bundle attachment")


def verify_bytes(
    data: bytes,
    trusted: dict | None = None,
    *,
    trust_embedded: bool = False,
    origin: str | None = None,
) -> list:
    """Run every check over a bundle (or a PDF carrying one). Stops at the first failed check,
    since later checks would only repeat it; returns the list of Check results."""
    checks: list = []
    trusted = dict(trusted or {})

    def run(name, fn):
        try:
            detail = fn()
        except Failed as exc:
            checks.append(Check(name, False, str(exc)))
            return False
        except Exception as exc:  # noqa: BLE001 - hostile input must end in FAIL, never a traceback
            checks.append(Check(name, False, f"malformed input: {type(exc).__name__}: {exc}"))
            return False
        checks.append(Check(name, True, detail))
        return True

    st: dict = {}

    def c_file():
        raw = data
        source = "bundle file"
        if raw.startswith(b"%PDF"):
            raw = bundle_from_pdf(raw)
            source = "bundle attached to the PDF"
        try:
            bundle = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Failed(f"not JSON: {exc}") from exc
        if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
            raise Failed(f"not an AEGIS bundle (format must be {BUNDLE_FORMAT})")
        for field in ("digest", "dsseEnvelope", "ledger", "keys"):
            if field not in bundle:
                raise Failed(f"bundle has no '{field}'")
        st["raw"], st["bundle"] = raw, bundle
        return f"{source}, {len(raw)} bytes"

    def c_layout():
        if bundle_layout(st["bundle"]) != st["raw"]:
            raise Failed("bytes differ from the layout AEGIS writes: the file was edited")
        return "byte-exact"

    def c_keys():
        for kid, pem in st["bundle"]["keys"].items():
            try:
                key = load_public_pem(pem.encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise Failed(f"embedded key {kid} is damaged: {exc}") from exc
            if keyid_of(key) != kid:
                raise Failed(f"embedded key filed as {kid} is really {keyid_of(key)}")
            # PEM parsers forgive stray whitespace and line endings; a copy that is not byte for
            # byte the key's own PEM has been edited, even if it still decodes to the same key.
            if pem != public_pem_text(key):
                raise Failed(f"embedded key {kid} is not byte for byte the PEM of that key (edited copy)")
            if trust_embedded:
                trusted.setdefault(kid, key)
        if not trusted:
            raise Failed("no trusted key: pass --key PEM or --keyring DIR (or --trust-embedded)")
        how = "embedded in the bundle (compare out of band!)" if trust_embedded else "given by the verifier"
        return f"{', '.join(sorted(trusted))} ({how})"

    def c_digest():
        env = st["bundle"]["dsseEnvelope"]
        body = b64any(env["payload"])
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        if got != st["bundle"]["digest"]:
            raise Failed(f"payload hashes to {got}, bundle says {st['bundle']['digest']}")
        st["body"] = body
        return got

    def c_signature():
        env = st["bundle"]["dsseEnvelope"]
        if env.get("payloadType") != PAYLOAD_TYPE:
            raise Failed(f"payloadType {env.get('payloadType')!r}, expected {PAYLOAD_TYPE}")
        sigs = env.get("signatures")
        if not isinstance(sigs, list) or not sigs:
            raise Failed("envelope carries no signatures")
        msg = pae(env["payloadType"], st["body"])
        good = []
        for entry in sigs:
            raw = b64any(entry["sig"])
            who = None
            for kid, key in trusted.items():
                try:
                    key.verify(raw, msg)
                except InvalidSignature:
                    continue
                who = kid
                break
            if who is None:
                raise Failed(f"signature labelled {entry.get('keyid')!r} verifies with no trusted key")
            if entry.get("keyid") != who:
                raise Failed(f"signature labelled {entry.get('keyid')!r} was made by {who}")
            good.append(who)
        return "Ed25519 by " + ", ".join(good)

    def c_statement():
        stmt = json.loads(st["body"].decode("utf-8"))
        if stmt.get("_type") != STATEMENT_TYPE:
            raise Failed(f"_type is {stmt.get('_type')!r}")
        if stmt.get("predicateType") != PREDICATE_TYPE:
            raise Failed(f"predicateType is {stmt.get('predicateType')!r}")
        subjects = stmt.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise Failed("statement has no subjects")
        for s in subjects:
            if not re.fullmatch(r"[0-9a-f]{64}", str((s.get("digest") or {}).get("sha256", ""))):
                raise Failed(f"subject {s.get('name')!r} has no sha256 digest")
        st["stmt"] = stmt
        p = stmt["predicate"]
        return f"run {p.get('run_id')}, verdict {p.get('verdict')}, {len(subjects)} subjects"

    def c_subjects():
        stmt = st["stmt"]
        p = stmt["predicate"]
        by_name = {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]}
        change = hashlib.sha256(p["inputs"]["change_text"].encode("utf-8")).hexdigest()
        if by_name.get("change") != change:
            raise Failed("subject 'change' does not match the change text in the statement")
        lab = p["inputs"]["lab"]
        for node, dig in lab["node_configs"].items():
            name = f"lab/{lab['name']}/{node}/frr.conf"
            if "sha256:" + by_name.get(name, "") != dig:
                raise Failed(f"subject {name!r} does not match the lab's node config digest")
        for node, rel in lab.get("node_config_files", {}).items():
            entry = lab.get("files", {}).get(rel) or {}
            if "sha256:" + str(entry.get("sha256")) != lab["node_configs"].get(node):
                raise Failed(f"node {node}: config file {rel} does not match the config subject")
        for rel, entry in lab.get("files", {}).items():
            if (
                "text" in entry
                and hashlib.sha256(entry["text"].encode("utf-8")).hexdigest() != entry["sha256"]
            ):
                raise Failed(f"lab file {rel} text does not match its digest")
        if p.get("result", {}).get("verdict") != p.get("verdict") or p.get("result", {}).get(
            "run_id"
        ) != p.get("run_id"):
            raise Failed("verdict or run id differs between the statement and its result")
        return f"change and {len(lab['node_configs'])} node configs, {len(lab.get('files', {}))} lab files"

    def c_leaf():
        led = st["bundle"]["ledger"]
        kind, digest = led["kind"], st["bundle"]["digest"]
        leaf = h_leaf(f"aegis-ledger/v1\n{kind}\n{digest}\n".encode())
        if leaf.hex() != led["leaf_hash"]:
            raise Failed("ledger leaf hash does not commit to this bundle's seal digest")
        st["leaf"] = leaf
        return f"{kind} leaf {leaf.hex()[:16]}…"

    def c_checkpoint():
        led = st["bundle"]["ledger"]
        index, proof, note = tlog_proof_parse(led["tlog_proof"])
        cp_origin, size, root, verified = checkpoint_verify(note, trusted)
        want = origin or led.get("origin")
        if cp_origin != want:
            raise Failed(f"checkpoint origin {cp_origin!r}, expected {want!r}")
        if index != led.get("index"):
            raise Failed(f"proof is for index {index}, bundle says {led.get('index')}")
        st.update(index=index, proof=proof, size=size, root=root)
        return f"{cp_origin} size {size} root {root.hex()[:16]}… signed by {', '.join(verified)}"

    def c_inclusion():
        if not verify_inclusion(st["leaf"], st["index"], st["size"], st["proof"], st["root"]):
            raise Failed(f"inclusion proof for index {st['index']} does not reach the checkpoint root")
        return f"leaf {st['index']} of {st['size']}, {len(st['proof'])} proof hashes"

    steps = [
        ("bundle-file", c_file),
        ("canonical-layout", c_layout),
        ("trusted-keys", c_keys),
        ("seal-digest", c_digest),
        ("signature", c_signature),
        ("statement", c_statement),
        ("subjects", c_subjects),
        ("ledger-leaf", c_leaf),
        ("checkpoint", c_checkpoint),
        ("inclusion", c_inclusion),
    ]
    for name, fn in steps:
        if not run(name, fn):
            break
    return checks


def keys_from_paths(key_files: list, keyring_dirs: list) -> dict:
    trusted = {}
    paths = [Path(p) for p in key_files]
    for d in keyring_dirs:
        paths += sorted(Path(d).glob("*.pem"))
    for p in paths:
        key = load_public_pem(p.read_bytes())
        trusted[keyid_of(key)] = key
    return trusted


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verify an AEGIS evidence bundle offline.")
    ap.add_argument("file", help="bundle.json, or the examiner PDF that carries it")
    ap.add_argument("--key", action="append", default=[], help="trusted public key (PEM); repeatable")
    ap.add_argument("--keyring", action="append", default=[], help="folder of trusted *.pem public keys")
    ap.add_argument("--trust-embedded", action="store_true", help="trust the key copies inside the bundle")
    ap.add_argument("--origin", help="expected ledger origin (default: the one the bundle names)")
    args = ap.parse_args(argv)
    try:
        data = Path(args.file).read_bytes()
        trusted = keys_from_paths(args.key, args.keyring)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    checks = verify_bytes(data, trusted, trust_embedded=args.trust_embedded, origin=args.origin)
    for c in checks:
        print(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<17} {c.detail}")
    failed = [c.name for c in checks if not c.ok]
    if failed or len(checks) < 10:
        print(f"NOT VERIFIED: failing check: {', '.join(failed) or 'incomplete'}")
        return 1
    print("VERIFIED: all 10 checks hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
