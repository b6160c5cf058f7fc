"""Writes of the evidence app: sealing a run, appending to the ledger, checking the ledger.

The formats live in the Django-free core (`evidence/core/`); this module adds the site key,
the rows and the files around it. Nothing here prints: callers (management commands, the
pipeline's `preflight` command, Celery tasks) decide what to show.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from guardian.shortcuts import assign_perm

from aegis_base.core.files import atomic_write
from compliance.crosswalk import controls_for
from compliance.oscal import assessment_results
from evidence.core import merkle
from evidence.core.bundle import (
    BundleError,
    bundle_assemble,
    bundle_dumps,
    lab_files_collect,
    ledger_leaf_data,
    result_check,
    statement_build,
    statement_seal,
)
from evidence.core.checkpoint import CheckpointError, checkpoint_sign, checkpoint_verify, tlog_proof_format
from evidence.core.keys import KeyFileError, SigningKey, keyring_add, keyring_load, signing_key_load_or_create
from evidence.models import Bundle, Checkpoint, Cosignature, LedgerEntry

log = logging.getLogger("aegis.evidence")

VERIFIER_SOURCE = Path(__file__).with_name("verify_standalone.py")
# Any constant works; it only has to be the same in every process that appends.
_LEDGER_LOCK_ID = 0x4145_4749_535F_4C47  # "AEGIS_LG"
_process_lock = threading.Lock()


class SealError(ValueError):
    """Sealing refused or failed; the message says what to fix. Nothing was half-written."""


class LedgerError(RuntimeError):
    """The stored ledger does not match its own checkpoints: refuse to sign on top of it."""


# ---- keys -----------------------------------------------------------------------------


def keyring_dir() -> Path:
    return Path(settings.AEGIS_HOME) / "keys" / "trusted"


def site_key() -> SigningKey:
    """The site's signing key (created on first use); its public key is always trusted."""
    key = signing_key_load_or_create(settings.AEGIS_SITE_KEY_FILE)
    keyring_add(keyring_dir(), key.public_key)
    return key


def trusted_keys() -> dict[str, Ed25519PublicKey]:
    """Public keys this site accepts on bundles and checkpoints: the keyring (old and current).

    Verifying needs no private key: a process that may not read the site key file (the web
    server, when the twin worker owns the key) still verifies with the public keyring.
    """
    try:
        site_key()
    except KeyFileError:
        keys = keyring_load(keyring_dir())
        if keys:
            return keys
        raise
    return keyring_load(keyring_dir())


# ---- ledger ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerAppend:
    index: int
    tree_size: int
    leaf_hash: str  # hex
    root_hash: str  # hex
    checkpoint_note: str
    proof: list[bytes]

    def tlog_proof(self) -> str:
        return tlog_proof_format(self.index, self.proof, self.checkpoint_note)


def _lock_ledger() -> None:
    """Serialise appends across processes (PostgreSQL advisory lock, held to commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LEDGER_LOCK_ID])


def ledger_append(
    kind: str, payload_digest: str, *, ref: str = "", key: SigningKey | None = None
) -> LedgerAppend:
    """Append one leaf (kind + digest) and sign the new checkpoint. Serialised; atomic.

    Refuses (LedgerError) when the stored leaves no longer match the last checkpoint, so the
    log never signs a tree inconsistent with one it signed before. Used for bundles here and
    by promote/ for approvals and promotion records.
    """
    if not kind or not payload_digest.startswith("sha256:"):
        raise ValueError("ledger_append needs a kind and a 'sha256:<hex>' digest")
    key = key or site_key()
    with _process_lock, transaction.atomic():
        _lock_ledger()
        leaves = [
            bytes.fromhex(h)
            for h in LedgerEntry.objects.order_by("index").values_list("leaf_hash", flat=True)
        ]
        last = Checkpoint.objects.order_by("-tree_size").first()
        if last is not None:
            if last.tree_size != len(leaves) or merkle.root(leaves).hex() != last.root_hash:
                raise LedgerError(
                    f"ledger has {len(leaves)} leaves but the last checkpoint covers {last.tree_size} "
                    f"with another root: the log was altered; run `manage.py ledger_check`"
                )
        index = len(leaves)
        leaf = merkle.leaf_hash(ledger_leaf_data(kind, payload_digest))
        leaves.append(leaf)
        root = merkle.root(leaves)
        note = checkpoint_sign(settings.AEGIS_LEDGER_ORIGIN, len(leaves), root, key)
        LedgerEntry.objects.create(
            index=index, kind=kind, payload_digest=payload_digest, leaf_hash=leaf.hex(), ref=ref[:200]
        )
        Checkpoint.objects.create(tree_size=len(leaves), root_hash=root.hex(), note=note, keyid=key.keyid)
        return LedgerAppend(
            index=index,
            tree_size=len(leaves),
            leaf_hash=leaf.hex(),
            root_hash=root.hex(),
            checkpoint_note=note,
            proof=merkle.inclusion_proof(leaves, index),
        )


@dataclass
class LedgerReport:
    size: int = 0
    checkpoints: int = 0
    bundles: int = 0
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what was checked, for the command to print

    @property
    def ok(self) -> bool:
        return not self.problems


def ledger_check(*, consistency_pairs: int = 50) -> LedgerReport:
    """Recompute the tree from every leaf and check every stored checkpoint and bundle row."""
    report = LedgerReport()
    trusted = list(trusted_keys().values())
    entries = list(
        LedgerEntry.objects.order_by("index").values_list("index", "kind", "payload_digest", "leaf_hash")
    )
    report.size = len(entries)
    leaves: list[bytes] = []
    for position, (index, kind, digest, stored) in enumerate(entries):
        if index != position:
            report.problems.append(f"leaf index {index} found where {position} belongs: a leaf is missing")
        leaf = merkle.leaf_hash(ledger_leaf_data(kind, digest))
        if leaf.hex() != stored:
            report.problems.append(f"leaf {index}: stored hash does not match its kind and digest")
        leaves.append(leaf)
    report.lines.append(f"leaves: {len(leaves)} recomputed from kind and digest")
    roots = merkle.prefix_roots(leaves)
    checkpoints = list(Checkpoint.objects.order_by("tree_size"))
    report.checkpoints = len(checkpoints)
    for cp in checkpoints:
        label = f"checkpoint size {cp.tree_size}"
        try:
            parsed = checkpoint_verify(cp.note, trusted, origin=settings.AEGIS_LEDGER_ORIGIN)
        except CheckpointError as exc:
            report.problems.append(f"{label}: {exc}")
            continue
        if parsed.size != cp.tree_size or parsed.root_hash.hex() != cp.root_hash:
            report.problems.append(f"{label}: row disagrees with its signed note")
        if cp.tree_size == 0 or cp.tree_size > len(roots):
            report.problems.append(f"{label}: the ledger has only {len(roots)} leaves")
        elif roots[cp.tree_size - 1] != parsed.root_hash:
            report.problems.append(
                f"{label}: signed root differs from the root of the first {cp.tree_size} leaves"
            )
    report.lines.append(f"checkpoints: {len(checkpoints)} signatures and roots checked")
    # Equal prefix roots already make every pair of checkpoints consistent; proving the most
    # recent pairs with RFC 9162 consistency proofs exercises the same path an examiner uses.
    pairs = list(zip(checkpoints, checkpoints[1:], strict=False))[-consistency_pairs:]
    for old, new in pairs:
        if new.tree_size > len(leaves):
            continue
        proof = merkle.consistency_proof(leaves[: new.tree_size], old.tree_size)
        if not merkle.verify_consistency(
            old.tree_size, new.tree_size, bytes.fromhex(old.root_hash), bytes.fromhex(new.root_hash), proof
        ):
            report.problems.append(f"checkpoints {old.tree_size} -> {new.tree_size}: not consistent")
    report.lines.append(f"consistency: {len(pairs)} consecutive checkpoint pairs proven")
    by_index = {index: digest for index, _, digest, _ in entries}
    for row in Bundle.objects.only("ledger_index", "digest", "run_id"):
        report.bundles += 1
        if by_index.get(row.ledger_index) != row.digest:
            report.problems.append(
                f"bundle {row.run_id}: ledger leaf {row.ledger_index} does not hold its digest"
            )
    report.lines.append(f"bundles: {report.bundles} matched to their leaves")
    cosignatures_check(report)
    return report


def ledger_consistency(old_size: int, new_size: int | None = None) -> dict[str, Any]:
    """A consistency proof between two tree sizes (for an examiner holding an old checkpoint)."""
    leaves = [
        bytes.fromhex(h) for h in LedgerEntry.objects.order_by("index").values_list("leaf_hash", flat=True)
    ]
    new_size = len(leaves) if new_size is None else new_size
    if not 0 <= old_size <= new_size <= len(leaves):
        raise ValueError(f"sizes must satisfy 0 <= old ({old_size}) <= new ({new_size}) <= {len(leaves)}")
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": merkle.root(leaves[:old_size]).hex(),
        "new_root": merkle.root(leaves[:new_size]).hex(),
        "proof": [h.hex() for h in merkle.consistency_proof(leaves[:new_size], old_size)],
    }


# ---- sealing --------------------------------------------------------------------------


@dataclass(frozen=True)
class SealOutcome:
    bundle_id: int
    digest: str
    bundle_path: Path | None
    pdf_path: Path | None
    ledger_index: int


def _controls(
    result: dict[str, Any], frameworks: list[str], approvals: list[dict] | None, operator: str | None
) -> list[dict]:
    """The compliance crosswalk rows of the run, sealed into the bundle."""
    try:
        # seal=True: the rows are sealed inside the bundle, so the integrity controls hold.
        return list(controls_for(result, frameworks, approvals=approvals, operator=operator, seal=True))
    except (KeyError, ValueError) as exc:
        raise SealError(f"frameworks {frameworks}: {exc}") from exc


def _oscal_attachment(bundle: dict[str, Any], bundle_bytes: bytes) -> list[tuple[str, bytes, str, str, str]]:
    """The OSCAL assessment results of the bundle, to attach to the PDF; [] when not possible.

    The PDF is a view of the bundle and this file is derived from it, so a bundle without a
    control mapping (or a site without compliance/) simply gets no OSCAL attachment.
    """
    if not bundle_statement_controls(bundle):
        return []
    try:
        doc = assessment_results(bundle, None, bundle_file_sha256=hashlib.sha256(bundle_bytes).hexdigest())
    except ValueError as exc:
        log.warning("no OSCAL attachment for %s: %s", bundle.get("digest"), exc)
        return []
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return [
        ("oscal-assessment-results.json", data, "application/json", "OSCAL 1.2 assessment results", "Data")
    ]


def bundle_statement_controls(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    from evidence.core.bundle import bundle_statement

    try:
        return list((bundle_statement(bundle).get("predicate") or {}).get("controls") or [])
    except BundleError:
        return []


def _software_versions(result: dict[str, Any]) -> dict[str, Any]:
    import platform

    import cryptography
    import django
    import reportlab

    versions = dict(result.get("versions") or {})
    versions.update(
        {
            "python": versions.get("python") or platform.python_version(),
            "django": django.get_version(),
            "cryptography": cryptography.__version__,
            "reportlab": reportlab.Version,
        }
    )
    return versions


def export_write(
    out_dir: Path, bundle_bytes: bytes, pdf_bytes: bytes | None, keys: Iterable[Ed25519PublicKey]
) -> None:
    """bundle.json, report.pdf, the standalone verifier and the site's public keys, side by side."""
    from evidence.core.keys import keyid_of, public_key_pem

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "bundle.json", bundle_bytes)
    if pdf_bytes is not None:
        atomic_write(out_dir / "report.pdf", pdf_bytes)
    shutil.copyfile(VERIFIER_SOURCE, out_dir / "verify_standalone.py")
    key_dir = out_dir / "site-keys"
    key_dir.mkdir(exist_ok=True)
    for key in keys:
        (key_dir / f"{keyid_of(key)}.pub.pem").write_text(public_key_pem(key))


def run_seal(
    result: dict[str, Any],
    *,
    lab_dir: str | Path | None,
    change_text: str | None,
    out_dir: Path | None,
    frameworks: list[str] | None = None,
    operator: str | None = None,
    approvals: list[dict] | None = None,
) -> SealOutcome:
    """Seal a preflight result: signed bundle, ledger leaf + checkpoint, Bundle row, bundle.json
    and report.pdf in `out_dir` (default the run folder AEGIS_RUNS_DIR/<run id>). Operator-level action;
    the caller has authorised it. Raises SealError before writing anything on bad input.
    """
    try:
        result_check(result)
        lab_files = lab_files_collect(lab_dir) if lab_dir else None
    except BundleError as exc:
        raise SealError(str(exc)) from exc
    frameworks = list(settings.AEGIS_FRAMEWORKS if frameworks is None else frameworks)
    controls = _controls(result, frameworks, approvals, operator)
    key = site_key()
    sealed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        statement = statement_build(
            result,
            change_text=change_text,
            lab_files=lab_files,
            operator=operator,
            frameworks=frameworks,
            controls=controls,
            sealed_at=sealed_at,
            keyid=key.keyid,
            ledger_origin=settings.AEGIS_LEDGER_ORIGIN,
            software=_software_versions(result),
        )
        envelope, digest = statement_seal(statement, key)
    except (BundleError, ValueError) as exc:
        raise SealError(str(exc)) from exc
    out_dir = Path(out_dir) if out_dir else Path(settings.AEGIS_RUNS_DIR) / result["run_id"]
    keys = trusted_keys()
    if out_dir.exists() and not out_dir.is_dir():
        raise SealError(f"{out_dir} exists and is not a folder; choose another output folder")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.sealing-", dir=out_dir.parent))
    except OSError as exc:
        raise SealError(f"cannot write to {out_dir.parent}: {exc.strerror or exc}") from exc
    try:
        # Everything that can fail runs inside the transaction (files go to a staging folder
        # first), so a failure leaves no ledger leaf, checkpoint, row or file behind; only
        # renames within one folder follow the commit.
        row, appended = _seal_commit(result, statement, envelope, digest, key, keys, frameworks, operator,
                                     approvals, out_dir, staging)  # fmt: skip
        out_dir.mkdir(exist_ok=True)
        for item in sorted(staging.iterdir()):
            target = out_dir / item.name
            if item.is_dir() and target.is_dir():
                for sub in item.iterdir():
                    os.replace(sub, target / sub.name)
            else:
                os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SealOutcome(
        bundle_id=row.pk,
        digest=digest,
        bundle_path=out_dir / "bundle.json",
        pdf_path=out_dir / "report.pdf",
        ledger_index=appended.index,
    )


def _seal_commit(
    result: dict[str, Any],
    statement: dict[str, Any],
    envelope: dict[str, Any],
    digest: str,
    key: SigningKey,
    keys: dict[str, Ed25519PublicKey],
    frameworks: list[str],
    operator: str | None,
    approvals: list[dict] | None,
    out_dir: Path,
    staging: Path,
) -> tuple[Bundle, LedgerAppend]:
    """Ledger leaf, checkpoint, PDF, Bundle row and the files (in `staging`), in one transaction."""
    from evidence.core.pdf import PdfError, report_render

    with transaction.atomic():
        appended = ledger_append("bundle", digest, ref=result["run_id"], key=key)
        ledger = {
            "origin": settings.AEGIS_LEDGER_ORIGIN,
            "kind": "bundle",
            "index": appended.index,
            "leaf_hash": appended.leaf_hash,
            "tlog_proof": appended.tlog_proof(),
        }
        bundle = bundle_assemble(envelope, digest, ledger, {key.keyid: key.public_pem()})
        bundle_bytes = bundle_dumps(bundle)
        try:
            pdf_bytes = report_render(
                bundle,
                statement,
                bundle_bytes,
                approvals=approvals,
                page_size=settings.AEGIS_PDF_PAGE_SIZE,
                verifier_source=VERIFIER_SOURCE.read_bytes(),
                extra_attachments=_oscal_attachment(bundle, bundle_bytes),
            )
        except PdfError as exc:
            raise SealError(f"examiner PDF: {exc}") from exc
        row = Bundle.objects.create(
            run_id=result["run_id"],
            digest=digest,
            verdict=result["verdict"],
            tier=(result.get("twin") or {}).get("tier") or "",
            lab_name=result["lab"]["name"],
            operator_username=operator or "",
            frameworks=frameworks,
            keyid=key.keyid,
            ledger_index=appended.index,
            bundle_json=bundle_bytes.decode("ascii"),
            json_path=str(out_dir / "bundle.json"),
            pdf_path=str(out_dir / "report.pdf"),
        )
        operator_user = get_user_model().objects.filter(username=operator).first() if operator else None
        if operator_user is not None:
            bundle_grant_view(row, operator_user)
        try:
            export_write(staging, bundle_bytes, pdf_bytes, keys.values())
        except OSError as exc:
            raise SealError(f"cannot write the export to {out_dir}: {exc.strerror or exc}") from exc
    return row, appended


def bundle_grant_view(bundle_row: Bundle, who: Any) -> None:
    """Let a user or group see and download this bundle (object permission `evidence.view_bundle`).

    The one access model of bundles: the run's operator gets it at sealing, the approvers' group
    when the run needs their decision; auditors hold the permission for every bundle (their group).
    """
    assign_perm("evidence.view_bundle", who, bundle_row)


def bundle_approvals_set(bundle_row: Bundle, approvals: list[dict[str, Any]]) -> Path | None:
    """Store the decisions recorded on the bundle so far and re-render its PDF; returns the PDF path.

    Promote calls it after each decision. Nothing sealed changes (same bundle, same seal digest).
    """
    bundle_row.approvals = list(approvals)
    bundle_row.save(update_fields=["approvals"])
    return bundle_pdf_refresh(bundle_row)


def bundle_pdf_refresh(bundle_row: Bundle) -> Path | None:
    """Re-render report.pdf in place with the approvals stored on the row; returns its path.

    Returns None when the bundle's export folder is not on this server.
    """
    path = Path(bundle_row.pdf_path) if bundle_row.pdf_path else None
    if path is None or not path.parent.is_dir():
        return None
    atomic_write(path, bundle_report_render(bundle_row))
    return path


def bundle_report_render(bundle_row: Bundle, *, approvals: list[dict] | None = None) -> bytes:
    """Render the examiner PDF of a sealed bundle again, e.g. once approvals exist.

    `approvals` defaults to the decisions stored on the row (`Bundle.approvals`). The PDF is a
    view of the bundle, not part of it: re-rendering changes nothing sealed.
    """
    if approvals is None:
        approvals = list(bundle_row.approvals or [])
    from evidence.core.bundle import bundle_statement
    from evidence.core.pdf import report_render

    bundle = json.loads(bundle_row.bundle_json)
    return report_render(
        bundle,
        bundle_statement(bundle),
        bundle_row.bundle_json.encode("ascii"),
        approvals=approvals,
        page_size=settings.AEGIS_PDF_PAGE_SIZE,
        verifier_source=VERIFIER_SOURCE.read_bytes(),
        extra_attachments=_oscal_attachment(bundle, bundle_row.bundle_json.encode("ascii")),
    )


def bundle_verify(data: bytes, *, extra_keys: dict[str, Ed25519PublicKey] | None = None) -> list[Any]:
    """Every verification check over bundle.json bytes (or a PDF carrying one), site keys trusted.

    Runs the same `verify_standalone.py` that ships to examiners, so both agree by construction.
    """
    from evidence.verify_standalone import verify_bytes

    trusted = {**trusted_keys(), **(extra_keys or {})}
    return verify_bytes(data, trusted, origin=settings.AEGIS_LEDGER_ORIGIN)


def ledger_extends(note: str) -> dict[str, Any]:
    """Prove that today's ledger is an append-only extension of an old signed checkpoint.

    `note` is a checkpoint an examiner kept (e.g. from an old bundle). Raises LedgerError when
    the signature fails or the ledger no longer contains that tree; returns the proof otherwise.
    """
    try:
        old = checkpoint_verify(note, list(trusted_keys().values()), origin=settings.AEGIS_LEDGER_ORIGIN)
    except CheckpointError as exc:
        raise LedgerError(f"the checkpoint does not verify: {exc}") from exc
    leaves = [
        bytes.fromhex(h) for h in LedgerEntry.objects.order_by("index").values_list("leaf_hash", flat=True)
    ]
    latest = Checkpoint.objects.order_by("-tree_size").first()
    if latest is None or old.size > latest.tree_size or latest.tree_size != len(leaves):
        raise LedgerError(f"the ledger does not reach size {old.size} (or its head is damaged)")
    proof = merkle.consistency_proof(leaves, old.size)
    if not merkle.verify_consistency(
        old.size, len(leaves), old.root_hash, bytes.fromhex(latest.root_hash), proof
    ):
        raise LedgerError(
            f"NOT CONSISTENT: the ledger's first {old.size} leaves do not have the root that checkpoint signed"
        )
    return {"old_size": old.size, "new_size": len(leaves), "proof": [h.hex() for h in proof],
            "new_checkpoint": latest.note}  # fmt: skip


# ---- witness cosignatures -------------------------------------------------------------


def witness_keyring_dir() -> Path:
    return Path(settings.AEGIS_HOME) / "keys" / "witnesses"


def ledger_witness(key: SigningKey, name: str, state_path: Path) -> Cosignature:
    """Cosign the latest checkpoint as witness `name`, after proving the log only grew since
    the checkpoint recorded in the witness's own `state_path` (kept outside AEGIS's control).

    Refuses (LedgerError) on a bad site signature, a log that shrank, a different tree at the
    same size (split view) or a failed consistency proof; nothing is signed then.
    """
    import json
    import time

    from evidence.core.checkpoint import cosignature_sign
    from evidence.core.keys import keyid_of

    latest = Checkpoint.objects.order_by("-tree_size").first()
    if latest is None:
        raise LedgerError("the ledger is empty: nothing to witness")
    try:
        head = checkpoint_verify(
            latest.note, list(trusted_keys().values()), origin=settings.AEGIS_LEDGER_ORIGIN
        )
    except CheckpointError as exc:
        raise LedgerError(f"the latest checkpoint does not verify: {exc}") from exc
    state: dict[str, Any] = {}
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text())
            old_size, old_root = int(state["size"]), bytes.fromhex(state["root"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"{state_path}: not a witness state file ({exc})") from exc
        if state.get("origin") != settings.AEGIS_LEDGER_ORIGIN:
            raise LedgerError(f"{state_path} is the state of log {state.get('origin')!r}, not this one")
        if old_size > head.size:
            raise LedgerError(f"the log shrank: witnessed size {old_size}, now {head.size}")
        proof = ledger_consistency(old_size, head.size) if old_size < head.size else None
        consistent = (
            old_root == head.root_hash
            if proof is None
            else merkle.verify_consistency(
                old_size, head.size, old_root, head.root_hash, [bytes.fromhex(h) for h in proof["proof"]]
            )
        )
        if not consistent:
            raise LedgerError(
                f"NOT CONSISTENT with the checkpoint of size {old_size} this witness saw: the log was rewritten "
                f"or shows different histories; nothing was cosigned"
            )
    existing = Cosignature.objects.filter(tree_size=head.size, witness_name=name).first()
    if existing is not None:
        return existing
    now = int(time.time())
    line = cosignature_sign(latest.note, key, name, now)
    keyring_add(witness_keyring_dir(), key.public_key)
    row = Cosignature.objects.create(
        tree_size=head.size,
        witness_name=name,
        witness_keyid=keyid_of(key.public_key),
        line=line,
        witnessed_at=now,
    )
    state_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        state_path,
        json.dumps(
            {"origin": settings.AEGIS_LEDGER_ORIGIN, "size": head.size, "root": head.root_hash.hex()}
        ).encode(),
        mode=0o600,
    )
    return row


def cosignatures_check(report: LedgerReport) -> None:
    """Every stored cosignature verifies with a registered witness key over its checkpoint."""
    from evidence.core.checkpoint import cosignature_verify

    witnesses = keyring_load(witness_keyring_dir())
    notes = dict(Checkpoint.objects.values_list("tree_size", "note"))
    rows = list(Cosignature.objects.order_by("tree_size"))
    for row in rows:
        label = f"cosignature by {row.witness_name} of size {row.tree_size}"
        key = witnesses.get(row.witness_keyid)
        if key is None:
            report.problems.append(
                f"{label}: witness key {row.witness_keyid} is not in {witness_keyring_dir()}"
            )
            continue
        if row.tree_size not in notes:
            report.problems.append(f"{label}: no such checkpoint")
            continue
        try:
            cosignature_verify(notes[row.tree_size], row.line, row.witness_name, key)
        except CheckpointError as exc:
            report.problems.append(f"{label}: {exc}")
    report.lines.append(f"cosignatures: {len(rows)} witness cosignatures checked")
