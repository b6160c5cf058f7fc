"""The promotion record: one plain JSON document per promotion attempt, passed or refused.

It says who asked, when, for which bundle, on which devices, what each gate decided, which
mode ran, and what every device printed. The lead's wiring seals it (canonical JSON,
sha256, Ed25519, ledger entry of kind `promotion`); `record_digest` is the digest it seals.
Post-implementation verification (a live promotion's read-back compared with the twin's
prediction) is a separate record that names the promotion record it follows.

Secrets never enter a record: device specs are recorded without passwords, and device
output is what the device printed in answer to AEGIS's own commands.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from evidence.core.canonical import canonical_bytes, digest_str
from promote.core.approvals import utc_iso
from promote.core.gate import GateResult

RECORD_FORMAT = "aegis.promotion.record/v1"
VERIFICATION_FORMAT = "aegis.promotion.verification/v1"
# refused: a gate or the drift check said no, nothing was sent to a device beyond reads.
# dry_run: candidates loaded and compared, nothing applied.
# applied: every device took its candidate and saved it.
# failed: a device step failed; `devices` says which device got how far.
OUTCOMES = ("refused", "dry_run", "applied", "failed")
# Device output kept per step; a runaway device cannot bloat the ledger.
OUTPUT_LIMIT = 64 * 1024


def _clip(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    return text[:OUTPUT_LIMIT] + f"\n… [{len(text) - OUTPUT_LIMIT} more characters cut]"


def promotion_record(
    *,
    actor: str,
    at: datetime,
    bundle_digest: str | None,
    run_id: str | None,
    gate: GateResult,
    outcome: str,
    devices: dict[str, dict[str, Any]],
    reasons: list[str] | None = None,
    consumed_jtis: list[str] | None = None,
) -> dict[str, Any]:
    """The record document. `devices[name]` holds spec, drift, dry_run / apply results."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    clean: dict[str, Any] = {}
    for name, entry in sorted(devices.items()):
        e = dict(entry)
        for step in ("dry_run", "apply"):
            if isinstance(e.get(step), dict) and "output" in e[step]:
                e[step] = {**e[step], "output": _clip(str(e[step]["output"]))}
        clean[name] = e
    return {
        "format": RECORD_FORMAT,
        "actor": actor,
        "at": utc_iso(at),
        "bundle": {"digest": bundle_digest, "run_id": run_id},
        "mode": gate.mode,
        "outcome": outcome,
        "gate": gate.as_dict(),
        "reasons": list(reasons if reasons is not None else gate.reasons),
        "devices": clean,
        "consumed_approvals": list(consumed_jtis or []),
    }


def verification_record(
    *,
    promotion_digest: str,
    at: datetime,
    ok: bool,
    devices: dict[str, dict[str, Any]],
    waited_s: float,
) -> dict[str, Any]:
    """Post-implementation verification: device state read back against the twin's prediction."""
    return {
        "format": VERIFICATION_FORMAT,
        "promotion_record": promotion_digest,
        "at": utc_iso(at),
        "ok": ok,
        "waited_s": round(waited_s, 2),
        "devices": devices,
    }


def record_digest(record: dict[str, Any]) -> str:
    """`sha256:<hex>` of the record's RFC 8785 bytes: what the ledger entry commits to."""
    return digest_str(canonical_bytes(record))
