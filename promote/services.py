"""Writes of the promote app (web side): approval decisions, recorded and audited.

The signed approval token and the gate are `promote/core/` (the promotion engineer's);
this records the human decision, after the separation-of-duties rules in `aegis_base.core.policy`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from aegis_base.core import policy
from aegis_base.services import audit_record
from evidence.core.bundle import bundle_statement
from evidence.core.canonical import canonical_bytes, digest_str
from evidence.models import Bundle
from evidence.services import bundle_approvals_set, ledger_append, trusted_keys
from evidence.verify_standalone import Failed, bundle_from_pdf
from preflight import selectors
from preflight.models import PreflightRun
from preflight.services import event_append
from promote import selectors as promote_selectors
from promote.models import Approval, ApprovalSigningKey, PromotionRecord, SignedApproval, UsedApprovalToken

log = logging.getLogger("aegis.web")


class DecisionRefused(Exception):
    """The decision is not allowed; the message says why, in words for the approver."""


class DecisionInvalid(ValueError):
    """The decision itself is malformed (unknown decision, missing comment). `field` names the input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


MAX_COMMENT_CHARS = 4000


def approval_decide(*, run: PreflightRun, approver: Any, decision: str, comment: str) -> Approval:
    """Record `approver`'s approve/reject on `run`, audit it, and tell the run's watchers.

    Enforces the policy itself (DecisionRefused): role, separation of duties, state; the run
    row is locked so two approvers deciding at once are counted in order.
    """
    if decision not in (Approval.APPROVE, Approval.REJECT):
        raise DecisionInvalid("decision", "Choose approve or reject.")
    comment = (comment or "").strip()
    if not comment:
        raise DecisionInvalid(
            "comment", "Write a comment: auditors read why the change was approved or rejected."
        )
    if len(comment) > MAX_COMMENT_CHARS:
        raise DecisionInvalid("comment", f"Keep the comment under {MAX_COMMENT_CHARS} characters.")
    with transaction.atomic():
        locked = PreflightRun.objects.select_for_update().select_related("change__operator").get(pk=run.pk)
        refusal = policy.decide_refusal(
            selectors.actor_of(approver),
            selectors.run_facts(locked),
            high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS,
        )
        if refusal:
            audit_record(
                actor=approver,
                action="approval.refused",
                target=f"run:{locked.run_id}",
                detail={"decision": decision, "reason": refusal},
            )
            refused = DecisionRefused(refusal)
        else:
            refused = None
    if refused is not None:
        raise refused
    try:
        with transaction.atomic():
            locked = PreflightRun.objects.select_for_update().get(pk=run.pk)
            approval = Approval.objects.create(
                run=locked,
                approver=approver,
                decision=decision,
                comment=comment,
                subject_digest=locked.bundle_digest or f"run:{locked.run_id}",
            )
            signed = _approval_sign(approval, locked)
            leaf = _ledger_record(approval, signed)
            if signed is not None:
                signed.ledger_index = leaf
                signed.save(update_fields=["ledger_index"])
            audit_record(
                actor=approver,
                action=f"approval.{decision}",
                target=f"run:{locked.run_id}",
                detail={"comment": comment, "subject": approval.subject_digest, "ledger_index": leaf},
            )
            state = selectors.run_approval_state(locked)
            event_append(
                run=locked,
                step="approval",
                status="ok" if decision == "approve" else "failed",
                message=f"{approver.get_username()} {decision}d: {comment}",
                data={"decision": decision, "state": state},
            )
            run_pk = locked.pk
            transaction.on_commit(lambda: _report_refresh(run_pk))
    except IntegrityError:
        raise DecisionRefused("You have already decided on this run.") from None
    return approval


def _report_refresh(run_pk: int) -> None:
    """Re-render the examiner PDF so it lists the decisions (nothing sealed changes). Never raises."""
    run = PreflightRun.objects.filter(pk=run_pk).only("run_id").first()
    bundle = Bundle.objects.filter(run_id=run.run_id).first() if run else None
    if bundle is None:
        return
    try:
        bundle_approvals_set(bundle, promote_selectors.approval_records(run.run_id))
    except Exception:  # noqa: BLE001 - the decision stands; the PDF can be refreshed again later
        log.exception("could not refresh the examiner PDF of run %s after a decision", run.run_id)


def _ledger_record(approval: Approval, signed: SignedApproval | None = None) -> int | None:
    """Append the decision to the evidence ledger (same transaction); returns the leaf index.

    A ledger that refuses (e.g. it no longer matches its last checkpoint) refuses the decision
    too: a decision that cannot be made tamper-evident is not recorded at all.
    """
    record = {
        "kind": "approval",
        "run_id": approval.run.run_id,
        "subject": approval.subject_digest,
        "approver": approval.approver.get_username(),
        "decision": approval.decision,
        "comment": approval.comment,
        "at": approval.created.isoformat(),
    }
    # A decision on a sealed bundle is logged as its signed envelope (what the gate will be shown);
    # a decision on an unsealed run (no bundle yet) as the plain record.
    logged = signed.envelope if signed is not None else record
    try:
        appended = ledger_append("approval", digest_str(canonical_bytes(logged)), ref=approval.run.run_id)
    except Exception as exc:
        log.exception("the ledger refused approval of run %s", approval.run.run_id)
        raise DecisionRefused(
            f"The evidence ledger refused to record the decision ({exc}); "
            "nothing was recorded. Tell an administrator."
        ) from exc
    return appended.index


# ---- signed approvals (issue 7) -------------------------------------------------------------

KEK_FILE_NAME = "approval-kek"


def site_kek() -> bytes:
    """The key-encryption key for approvers' private keys.

    AEGIS_KEY_ENCRYPTION_KEY when set. For a first try without it, a random KEK is created once
    in AEGIS_HOME/keys/approval-kek (mode 0600) and a warning is logged: that file then guards
    every approver key, so a site sets the variable (kept apart from the database backups).
    """
    from promote.core.approvals import KEK_BYTES, kek_parse

    configured = getattr(settings, "AEGIS_KEY_ENCRYPTION_KEY", "")
    if configured:
        return kek_parse(configured)
    path = Path(settings.AEGIS_HOME) / "keys" / KEK_FILE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = base64.b64encode(os.urandom(KEK_BYTES)).decode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; use theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(raw + "\n")
            log.warning(
                "AEGIS_KEY_ENCRYPTION_KEY is not set: created %s (mode 0600) to encrypt approver keys; "
                "set the variable at a site",
                path,
            )
    return kek_parse(path.read_text().strip())


def approver_signing_key(user: Any) -> Any:
    """The approver's own signing key, created and stored (encrypted) on first use. Row-locked."""
    from promote.core.approvals import approver_key_for

    username = user.get_username()
    row = ApprovalSigningKey.objects.select_for_update().filter(user=user).first()
    key, blob = approver_key_for(username, site_kek(), row.private_key_encrypted if row else None)
    if row is None:
        try:
            with transaction.atomic():  # savepoint: a concurrent first decision may have made one
                ApprovalSigningKey.objects.create(
                    user=user,
                    keyid=key.keyid,
                    public_key_pem=key.public_pem(),
                    private_key_encrypted=blob,
                )
        except IntegrityError:
            row = ApprovalSigningKey.objects.get(user=user)
            key, _ = approver_key_for(username, site_kek(), row.private_key_encrypted)
    return key


def _approval_sign(approval: Approval, run: PreflightRun) -> SignedApproval | None:
    """Sign the decision as an in-toto human-review statement over the sealed bundle digest.

    None when the run has no sealed bundle (nothing a token could be bound to). A KEK that
    cannot open the approver's stored key refuses the decision, with what to fix.
    """
    from promote.core.approvals import KeyEncryptionError, approval_sign, approval_statement

    digest = approval.subject_digest
    if not digest.startswith("sha256:"):
        return None
    ttl = int(settings.AEGIS_APPROVAL_TTL_S)
    try:
        key = approver_signing_key(approval.approver)
    except KeyEncryptionError as exc:
        raise DecisionRefused(f"Your approval key cannot be used: {exc}. Tell an administrator.") from exc
    statement = approval_statement(
        bundle_digest=digest,
        run_id=run.run_id,
        approver=approval.approver.get_username(),
        role=policy.APPROVER,
        decision=approval.decision,
        comment=approval.comment,
        issued_at=approval.created,
        ttl_s=ttl,
        operator=run.change.operator.get_username(),
    )
    envelope = approval_sign(statement, key)
    return SignedApproval.objects.create(
        approval=approval,
        jti=statement["predicate"]["aegis"]["jti"],
        bundle_digest=digest,
        keyid=key.keyid,
        envelope=envelope,
        expires=approval.created + timedelta(seconds=ttl),
    )


# ---- promotion attempts (issue 7) -----------------------------------------------------------


class PromotionInputError(ValueError):
    """Input that cannot make an attempt (unreadable bundle, approval or inventory); says what to fix."""


def bundle_read(data: bytes, *, name: str = "bundle") -> dict[str, Any]:
    """A bundle.json, or the examiner PDF carrying one, as the dict the gate checks (G1 verifies it)."""
    if data.lstrip()[:5] == b"%PDF-":
        try:
            data = bundle_from_pdf(data)
        except Failed as exc:
            raise PromotionInputError(f"{name}: {exc}") from None
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PromotionInputError(
            f"{name}: not JSON ({exc}); give the bundle.json or the report PDF"
        ) from None
    if not isinstance(doc, dict) or "dsseEnvelope" not in doc or "digest" not in doc:
        raise PromotionInputError(f"{name}: not an AEGIS bundle (no digest / dsseEnvelope)")
    return doc


def approval_read(data: bytes, *, name: str = "approval") -> dict[str, Any]:
    """A downloaded approval.json (DSSE envelope) as a dict; its signature is G3's business."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PromotionInputError(
            f"{name}: not JSON ({exc}); give the approval.json you downloaded"
        ) from None
    if not isinstance(doc, dict) or not {"payload", "payloadType", "signatures"} <= set(doc):
        raise PromotionInputError(f"{name}: not a DSSE envelope (payload, payloadType, signatures)")
    return doc


def inventory_read(path: str | Path) -> dict[str, Any]:
    """A YAML device inventory file, validated (`device_inventory_load`); errors name file and field."""
    import yaml

    from promote.connectors.base import InventoryError, device_inventory_load

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise PromotionInputError(f"inventory {p}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise PromotionInputError(f"inventory {p}: not valid YAML ({exc})") from None
    try:
        return device_inventory_load(data)
    except InventoryError as exc:
        raise PromotionInputError(f"{p}: {exc}") from None


def inventory_site() -> dict[str, Any]:
    """The site's device inventory (AEGIS_DEVICE_INVENTORY)."""
    path = getattr(settings, "AEGIS_DEVICE_INVENTORY", "")
    if not path:
        raise PromotionInputError(
            "no device inventory: set AEGIS_DEVICE_INVENTORY to a YAML file mapping lab node names "
            "to devices (see docs/promotion.md)"
        )
    return inventory_read(path)


def inventory_covers(
    bundle: dict[str, Any], devices: dict[str, Any], *, where: str = "the inventory"
) -> None:
    """Every device the change touches has an inventory entry (else an input error naming them).

    Reads the statement without verifying it, only to name missing devices early; a bundle
    whose payload cannot be read is left to G1, which refuses it on the record.
    """
    try:
        result = bundle_statement(bundle)["predicate"].get("result") or {}
    except Exception:  # noqa: BLE001 - unreadable payload: G1 refuses it and records why
        return
    touched = sorted(
        n for n, t in ((result.get("change") or {}).get("devices") or {}).items() if str(t).strip()
    )
    missing = [n for n in touched if n not in devices]
    if missing:
        raise PromotionInputError(
            f"{where} has no device {', '.join(missing)} (the change touches {', '.join(touched)}); "
            f"add {'them' if len(missing) > 1 else 'it'} under `devices:` (known: {', '.join(sorted(devices)) or 'none'})"
        )


def _consume(jtis: list[str], *, bundle_digest: str, actor_name: str) -> None:
    """Mark approvals used, all or none, committed at once; IntegrityError when one was used already."""
    with transaction.atomic():
        UsedApprovalToken.objects.bulk_create(
            [UsedApprovalToken(jti=j, bundle_digest=bundle_digest, used_by=actor_name) for j in jtis]
        )


def promotion_attempt(
    *,
    actor: Any,
    bundle: dict[str, Any],
    approvals: list[dict[str, Any]],
    devices: dict[str, Any],
    live: bool = False,
    via: str = "cli",
    actor_name: str | None = None,
    connect: Any = None,
) -> PromotionRecord:
    """One promotion attempt through `promotion_execute`; its record is stored and appended to the ledger.

    Refusals are outcomes, not exceptions: every attempt leaves a `PromotionRecord` and a ledger
    leaf of kind "promotion" (and "promotion-verification" after a live apply). Approvals are
    consumed in `UsedApprovalToken` before the first device is changed. Must not run inside a
    transaction (device work takes seconds; the consumption must commit on its own).
    Assumes the caller checked who may promote (`promote_refusal`).
    """
    from promote.core.approvals import approval_peek
    from promote.core.promotion import promotion_execute

    name = actor_name or (actor.get_username() if actor is not None else "")
    digest = str(bundle.get("digest") or "")
    # A rejection recorded here is final whatever files are presented: the gate always sees it.
    shown = {json.dumps(e, sort_keys=True) for e in approvals}
    approvals = list(approvals) + [
        e
        for e in promote_selectors.signed_approvals_for_bundle(digest, decision=Approval.REJECT)
        if json.dumps(e, sort_keys=True) not in shown
    ]
    presented: list[str] = []
    for env in approvals:
        try:
            presented.append(str(approval_peek(env)["predicate"]["aegis"]["jti"]))
        except Exception:  # noqa: BLE001 - a malformed token is refused at G3 and recorded there
            continue
    used = set(UsedApprovalToken.objects.filter(jti__in=presented).values_list("jti", flat=True))
    proof, latest = promote_selectors.ledger_fresh_proof("bundle", digest)
    keys = trusted_keys()
    kwargs: dict[str, Any] = {"connect": connect} if connect is not None else {}
    out = promotion_execute(
        actor=name,
        bundle=bundle,
        site_keys=keys,
        log_keys=list(keys.values()),
        approvals=approvals,
        approver_keys=promote_selectors.approver_keys_registered(),
        used_jtis=used,
        devices=devices,
        live_requested=live,
        site_allows_live=bool(settings.AEGIS_ALLOW_LIVE_PROMOTION),
        high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS,
        ledger_origin=settings.AEGIS_LEDGER_ORIGIN,
        tlog_proof=proof,
        latest_checkpoint=latest,
        consume=lambda jtis: _consume(jtis, bundle_digest=digest, actor_name=name),
        **kwargs,
    )
    run_id = str(out.record["bundle"].get("run_id") or "")
    row = PromotionRecord(
        bundle=Bundle.objects.filter(digest=digest).first() if digest else None,
        bundle_digest=digest[:80],
        run_id=run_id[:100],
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=name,
        via=via,
        mode=out.record["mode"],
        live_requested=live,
        outcome=out.outcome,
        record=out.record,
        record_digest=out.record_digest,
        verification=out.verification,
    )
    # The attempt happened whatever the ledger says: the row is kept even if the append fails,
    # with no ledger index, and the failure is logged for an administrator (ledger_check).
    try:
        with transaction.atomic():
            row.ledger_index = ledger_append("promotion", out.record_digest, ref=run_id or digest).index
            if out.verification is not None:
                row.verification_digest = digest_str(canonical_bytes(out.verification))
                row.verification_ledger_index = ledger_append(
                    "promotion-verification", row.verification_digest, ref=run_id or digest
                ).index
            row.save()
    except Exception:  # noqa: BLE001
        log.exception(
            "the ledger refused promotion record %s; stored without a ledger leaf", out.record_digest
        )
        row.ledger_index = None
        row.verification_ledger_index = None
        row.save()
    audit_record(
        actor=actor if getattr(actor, "pk", None) else SimpleNamespace(username=name),
        action=f"promotion.{out.outcome}",
        target=f"run:{run_id}" if run_id else f"bundle:{digest[:60]}",
        detail={
            "mode": out.record["mode"],
            "record": out.record_digest,
            "via": via,
            "reasons": out.record["reasons"],
        },
    )
    return row
