"""Reads of the evidence app. Bundle listing with permissions lives with the auditor browser
(`evidence/api/bundles.py`); these are the ledger reads the commands and promote/ use."""

from __future__ import annotations

from evidence.models import Bundle, Checkpoint, LedgerEntry


def bundle_by_digest(digest: str) -> Bundle | None:
    """The bundle row sealed with this seal digest ("sha256:<hex>"), or None. No permission check."""
    return Bundle.objects.filter(digest=digest).first()


def ledger_entries_for(payload_digest: str) -> list[LedgerEntry]:
    """Every ledger leaf that logged this digest (a bundle, an approval of it, a promotion)."""
    return list(LedgerEntry.objects.filter(payload_digest=payload_digest).order_by("index"))


def checkpoint_latest() -> Checkpoint | None:
    """The newest signed tree head, or None for an empty ledger."""
    return Checkpoint.objects.order_by("-tree_size").first()
