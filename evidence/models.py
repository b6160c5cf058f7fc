"""Sealed bundles and the append-only ledger.

`LedgerEntry` and `Checkpoint` rows are never changed once written: the code only inserts,
and on PostgreSQL a trigger (migration 0002) refuses UPDATE and DELETE on both tables, so
even a hand-typed SQL statement or a bug cannot rewrite history. `Bundle` is a catalogue
row pointing at the sealed JSON (kept in full in `bundle_json`) and its files.
"""

from __future__ import annotations

from django.db import models


class LedgerEntry(models.Model):
    """One leaf of the Merkle log: a sealed bundle, an approval or a promotion record."""

    index = models.PositiveBigIntegerField(unique=True)  # leaf position, 0-based, no gaps
    kind = models.CharField(max_length=32)  # "bundle" | "approval" | "promotion" | ...
    payload_digest = models.CharField(max_length=80)  # "sha256:<hex>" of what was logged
    leaf_hash = models.CharField(max_length=64)  # hex RFC 9162 leaf hash
    ref = models.CharField(max_length=200, blank=True, default="")  # e.g. run id, for people
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["index"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["payload_digest"])]

    def __str__(self) -> str:
        return f"#{self.index} {self.kind} {self.payload_digest[:19]}…"


class Checkpoint(models.Model):
    """The signed tree head after an append (C2SP signed note)."""

    tree_size = models.PositiveBigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)  # hex
    note = models.TextField()  # the signed note, verbatim
    keyid = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tree_size"]

    def __str__(self) -> str:
        return f"size {self.tree_size} root {self.root_hash[:16]}…"


class Bundle(models.Model):
    """A sealed evidence bundle of one preflight run."""

    run_id = models.CharField(max_length=100, db_index=True)
    digest = models.CharField(max_length=80, unique=True)  # the seal digest "sha256:<hex>"
    verdict = models.CharField(max_length=20)
    tier = models.CharField(max_length=20, blank=True, default="")  # "real" | "simulated"
    lab_name = models.CharField(max_length=200)
    operator_username = models.CharField(max_length=150, blank=True, default="")
    frameworks = models.JSONField(default=list)
    keyid = models.CharField(max_length=64)
    ledger_index = models.PositiveBigIntegerField(unique=True)
    bundle_json = models.TextField()  # the exact bytes of bundle.json (ASCII)
    json_path = models.CharField(max_length=500, blank=True, default="")
    pdf_path = models.CharField(max_length=500, blank=True, default="")
    # The decisions recorded on this bundle so far, oldest first, in the one approval record shape
    # (promote's `approval_records`), written by promote through `bundle_approvals_set`. Not sealed:
    # the PDF and the crosswalk show them; each decision is its own ledger leaf.
    approvals = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.run_id} {self.verdict} {self.digest[:19]}…"


class Cosignature(models.Model):
    """A witness's cosignature of a checkpoint (C2SP tlog-cosignature), append-only like the ledger.

    The witness (e.g. the audit function, with its own key and its own record of the last
    checkpoint it saw) cosigns only after checking the log grew append-only since then.
    """

    tree_size = models.PositiveBigIntegerField()
    witness_name = models.CharField(max_length=200)
    witness_keyid = models.CharField(max_length=64)
    line = models.TextField()  # the signature line, verbatim
    witnessed_at = models.PositiveBigIntegerField()  # unix time the witness signed
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tree_size", "witness_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tree_size", "witness_name"], name="cosignature_one_per_witness_and_size"
            )
        ]

    def __str__(self) -> str:
        return f"{self.witness_name} cosigned size {self.tree_size}"
