"""The promotion gate G1–G4 plus the drift check: plain inputs in, each gate's verdict out.

- **G1 integrity**: the bundle's digest is recomputed from its signed payload, the site's
  signature verifies with a key from the site keyring (never the copy inside the bundle),
  and the bundle's ledger leaf is proven included under a signed checkpoint; when the
  latest checkpoint is given, the proof must be against that one.
- **G2 verdict promotable**: `ship_ready`, or `needs_approval` with as many distinct valid
  approvals as policy asks for; never `blocked`, never simulated evidence, never rejected.
- **G3 approvals valid**: each presented approval verifies with its approver's registered
  key, is bound to this bundle's digest, is unexpired, has not been used before (replay),
  is by a holder of the approver role and is not by the bundle's operator.
- **G4 mode**: dry-run unless the promotion asks for live AND the site allows live.
- **drift**: every device's running config still equals the baseline the twin used;
  evaluated after G1–G4 pass (it needs the devices), see `promote/core/drift.py`.

Nothing here talks to a device, a database or Django; `promote/core/promotion.py` runs
the gate, then the devices, and writes the record.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aegis_base.core.policy import ROLE_APPROVER, Decision, approval_status
from evidence.core.bundle import BUNDLE_FORMAT, ledger_leaf_data
from evidence.core.canonical import digest_str
from evidence.core.checkpoint import CheckpointError, checkpoint_verify, tlog_proof_parse
from evidence.core.dsse import IN_TOTO_PAYLOAD_TYPE, SignatureError, b64decode_any, dsse_verify
from evidence.core.merkle import leaf_hash, verify_inclusion
from promote.core.approvals import ApprovalClaims, ApprovalError, ApproverKey, approval_verify, utc_iso
from promote.core.drift import DriftResult

DRY_RUN = "dry-run"
LIVE = "live"
# Clocks of the web host and the worker may differ a little; an approval "issued" further
# in the future than this is refused as forged or mis-clocked.
CLOCK_SKEW = timedelta(seconds=120)


@dataclass
class GateCheck:
    gate: str  # G1 | G2 | G3 | G4 | drift
    name: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "name": self.name,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "detail": self.detail,
        }


@dataclass
class BundleFacts:
    """What G1 established about a bundle, from its verified statement."""

    digest: str
    run_id: str | None
    verdict: str | None
    tier: str | None
    risk_tier: str | None
    operator: str | None
    statement: dict[str, Any]


@dataclass
class GateResult:
    checks: list[GateCheck]
    mode: str  # dry-run | live (what G4 decided; only meaningful when G4 passed)
    facts: BundleFacts | None
    approvals: list[ApprovalClaims]

    def check(self, gate: str) -> GateCheck:
        return next(c for c in self.checks if c.gate == gate)

    @property
    def devices_allowed(self) -> bool:
        """G1–G4 passed: the promotion may connect to devices for the drift check."""
        return all(c.passed for c in self.checks if c.gate != "drift")

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.gate}: {r}" for c in self.checks if not c.passed for r in c.reasons]

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "mode": self.mode,
            "checks": [c.as_dict() for c in self.checks],
            "approvals": [a.as_dict() for a in self.approvals],
        }


# ---- G1 ------------------------------------------------------------------------------------


def integrity_check(
    bundle: dict[str, Any],
    *,
    site_keys: dict[str, Ed25519PublicKey],
    log_keys: list[Ed25519PublicKey],
    ledger_origin: str | None = None,
    tlog_proof: str | None = None,
    latest_checkpoint: str | None = None,
) -> tuple[GateCheck, BundleFacts | None]:
    """G1. `tlog_proof` defaults to the bundle's own proof; pass a fresh one for the latest checkpoint."""
    check = GateCheck("G1", "integrity", False)
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        check.reasons.append(f"not an AEGIS evidence bundle (format must be {BUNDLE_FORMAT})")
        return check, None
    claimed = str(bundle.get("digest", ""))
    envelope = bundle.get("dsseEnvelope")
    try:
        payload = b64decode_any((envelope or {}).get("payload", ""))
    except SignatureError as exc:
        check.reasons.append(f"bundle payload unreadable: {exc}")
        return check, None
    recomputed = digest_str(payload)
    check.detail.update(claimed_digest=claimed, recomputed_digest=recomputed)
    if recomputed != claimed:
        check.reasons.append(
            f"digest recomputed from the signed payload is {recomputed}, the bundle claims "
            f"{claimed}: the bundle was altered"
        )
    try:
        dsse_verify(envelope or {}, site_keys, payload_type=IN_TOTO_PAYLOAD_TYPE)
        check.detail["signature"] = "verified"
    except SignatureError as exc:
        check.reasons.append(f"site signature does not verify with the site keyring: {exc}")
    ledger = bundle.get("ledger") or {}
    proof_text = tlog_proof if tlog_proof is not None else ledger.get("tlog_proof")
    leaf = leaf_hash(ledger_leaf_data(str(ledger.get("kind", "bundle")), claimed or recomputed))
    if ledger.get("kind", "bundle") != "bundle":
        check.reasons.append(f"ledger entry kind is {ledger.get('kind')!r}, not a bundle")
    if ledger.get("leaf_hash") not in (None, leaf.hex()):
        check.reasons.append("ledger leaf hash in the bundle does not match its digest")
    if not proof_text:
        check.reasons.append("no ledger inclusion proof: the bundle was never entered in the ledger")
    else:
        try:
            index, hashes, note = tlog_proof_parse(str(proof_text))
            cp = checkpoint_verify(note, log_keys, origin=ledger_origin)
            check.detail.update(ledger_index=index, checkpoint_size=cp.size)
            if ledger.get("index") not in (None, index):
                # The proof decides where the leaf is; a bundle that says otherwise was edited.
                check.reasons.append(
                    f"the bundle's ledger index {ledger.get('index')!r} disagrees with its inclusion proof "
                    f"(leaf {index}): the bundle was altered"
                )
            if latest_checkpoint is not None:
                latest = checkpoint_verify(latest_checkpoint, log_keys, origin=ledger_origin)
                if (latest.size, latest.root_hash) != (cp.size, cp.root_hash):
                    check.reasons.append(
                        f"inclusion proof is against checkpoint size {cp.size}, the latest is "
                        f"{latest.size}: prove inclusion against the latest checkpoint"
                    )
            if not verify_inclusion(leaf, index, cp.size, hashes, cp.root_hash):
                check.reasons.append(
                    f"ledger inclusion proof fails for leaf {index} under checkpoint size {cp.size}"
                )
            else:
                check.detail["ledger"] = "included"
        except CheckpointError as exc:
            check.reasons.append(f"ledger proof: {exc}")
    try:
        statement = json.loads(payload)
        predicate = statement["predicate"]
        facts = BundleFacts(
            digest=claimed,
            run_id=predicate.get("run_id"),
            verdict=predicate.get("verdict"),
            tier=predicate.get("tier") or (predicate.get("result", {}).get("twin") or {}).get("tier"),
            risk_tier=(predicate.get("result", {}).get("risk") or {}).get("tier"),
            operator=(predicate.get("seal") or {}).get("operator"),
            statement=statement,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        check.reasons.append(f"bundle statement unreadable: {exc}")
        return check, None
    check.passed = not check.reasons
    return check, (facts if check.passed else None)


# ---- G3 ------------------------------------------------------------------------------------


def approvals_check(
    envelopes: Iterable[dict[str, Any]],
    *,
    facts: BundleFacts | None,
    approver_keys: dict[str, ApproverKey],
    used_jtis: Collection[str],
    now: datetime,
) -> tuple[GateCheck, list[ApprovalClaims]]:
    """G3: every presented approval must be valid for this bundle now."""
    check = GateCheck("G3", "approvals valid", False)
    valid: list[ApprovalClaims] = []
    envelopes = list(envelopes)
    if facts is None:
        check.reasons.append("not evaluated: G1 failed, so there is no trusted bundle digest to bind to")
        return check, valid
    seen: set[str] = set()
    for i, env in enumerate(envelopes, start=1):
        label = f"approval {i}"
        try:
            c = approval_verify(env, approver_keys)
        except ApprovalError as exc:
            check.reasons.append(f"{label}: {exc}")
            continue
        label = f"approval {i} ({c.approver}, jti {c.jti[:8]}…)"
        problems = []
        if c.bundle_digest != facts.digest:
            problems.append(
                f"was given for bundle {c.bundle_digest[:19]}…, not this bundle {facts.digest[:19]}… "
                "(a re-run needs a new approval)"
            )
        if now > c.expires_at:
            problems.append(f"expired at {utc_iso(c.expires_at)}")
        if c.issued_at > now + CLOCK_SKEW:
            problems.append(f"issued in the future ({utc_iso(c.issued_at)})")
        if c.jti in used_jtis or c.jti in seen:
            problems.append("was already used (replay refused): ask for a new approval")
        if facts.operator is not None and c.approver == facts.operator:
            problems.append(f"{c.approver} is the operator of this change and cannot approve it")
        if c.role != ROLE_APPROVER:
            problems.append(f"signed in role {c.role!r}, not {ROLE_APPROVER!r}")
        seen.add(c.jti)
        if problems:
            check.reasons.extend(f"{label} {p}" for p in problems)
        else:
            valid.append(c)
    check.detail["presented"] = len(envelopes)
    check.detail["valid"] = len(valid)
    if not envelopes:
        check.detail["note"] = "no approvals presented"
    check.passed = not check.reasons
    return check, valid


# ---- G2 ------------------------------------------------------------------------------------


def verdict_check(
    facts: BundleFacts | None, approvals: list[ApprovalClaims], *, high_risk_approvers: int
) -> GateCheck:
    check = GateCheck("G2", "verdict promotable", False)
    if facts is None:
        check.reasons.append("not evaluated: G1 failed")
        return check
    check.detail.update(verdict=facts.verdict, tier=facts.tier, risk_tier=facts.risk_tier)
    if facts.tier != "real":
        check.reasons.append(
            f"twin tier is {facts.tier!r}: only evidence from a real twin is promotable "
            "(simulated bundles never are)"
        )
    if facts.verdict not in ("ship_ready", "needs_approval"):
        check.reasons.append(f"verdict is {facts.verdict!r}: never promotable")
        return check
    status = approval_status(
        verdict=facts.verdict,
        risk_tier=facts.risk_tier,
        operator=facts.operator,
        bundle_digest=facts.digest,
        decisions=[Decision(a.approver, a.bundle_digest, a.decision, frozenset({a.role})) for a in approvals],
        high_risk_approvers=high_risk_approvers,
    )
    check.detail.update(
        approvals_required=status.required, approved_by=status.approved_by, rejected_by=status.rejected_by
    )
    if status.state == "rejected":
        check.reasons.append(f"rejected by {status.rejected_by}: a rejection is final for this bundle")
    elif status.state == "pending":
        check.reasons.append(f"needs {status.required} distinct approval(s), has {len(status.approved_by)}")
    check.passed = not check.reasons
    return check


# ---- G4 and drift --------------------------------------------------------------------------


def mode_check(*, live_requested: bool, site_allows_live: bool) -> tuple[GateCheck, str]:
    check = GateCheck(
        "G4", "mode", True, detail={"live_requested": live_requested, "site_allows_live": site_allows_live}
    )
    if not live_requested:
        check.detail["mode"] = DRY_RUN
        return check, DRY_RUN
    if not site_allows_live:
        check.passed = False
        check.reasons.append(
            "live promotion was asked for, but this site does not allow it "
            "(AEGIS_ALLOW_LIVE_PROMOTION is off); run a dry-run, or have an admin enable it"
        )
        return check, DRY_RUN
    check.detail["mode"] = LIVE
    return check, LIVE


def drift_gate(drift: list[DriftResult] | None) -> GateCheck:
    check = GateCheck("drift", "device config equals the twin's baseline", False)
    if drift is None:
        check.reasons.append("not checked yet (needs G1–G4 to pass first)")
        return check
    if not drift:
        check.reasons.append("no device to check")
        return check
    check.detail["devices"] = [d.as_dict() for d in drift]
    check.reasons.extend(d.reason for d in drift if not d.ok)
    check.passed = not check.reasons
    return check


def gate_evaluate(
    *,
    bundle: dict[str, Any],
    site_keys: dict[str, Ed25519PublicKey],
    log_keys: list[Ed25519PublicKey],
    approvals: Iterable[dict[str, Any]],
    approver_keys: dict[str, ApproverKey],
    used_jtis: Collection[str],
    now: datetime,
    live_requested: bool = False,
    site_allows_live: bool = False,
    high_risk_approvers: int = 2,
    ledger_origin: str | None = None,
    tlog_proof: str | None = None,
    latest_checkpoint: str | None = None,
    drift: list[DriftResult] | None = None,
) -> GateResult:
    """Every gate's pass/fail and reasons for one promotion attempt (pure; see module docstring)."""
    g1, facts = integrity_check(
        bundle,
        site_keys=site_keys,
        log_keys=log_keys,
        ledger_origin=ledger_origin,
        tlog_proof=tlog_proof,
        latest_checkpoint=latest_checkpoint,
    )
    g3, valid = approvals_check(
        approvals, facts=facts, approver_keys=approver_keys, used_jtis=used_jtis, now=now
    )
    g2 = verdict_check(facts, valid, high_risk_approvers=high_risk_approvers)
    g4, mode = mode_check(live_requested=live_requested, site_allows_live=site_allows_live)
    return GateResult([g1, g2, g3, g4, drift_gate(drift)], mode, facts, valid)


def gate_with_drift(result: GateResult, drift: list[DriftResult]) -> GateResult:
    """The same gate result with the drift check filled in."""
    checks = [c for c in result.checks if c.gate != "drift"] + [drift_gate(drift)]
    return GateResult(checks, result.mode, result.facts, result.approvals)
