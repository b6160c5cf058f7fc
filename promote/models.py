"""Approval decisions: an approver signs off on or rejects a run that needs approval.

The signed approval token and the promotion gate are the promotion engineer's
(`promote/core/`); this row is the recorded, audited human decision they build on.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Approval(models.Model):
    APPROVE = "approve"
    REJECT = "reject"
    DECISION_CHOICES = [(APPROVE, "approve"), (REJECT, "reject")]

    run = models.ForeignKey("preflight.PreflightRun", on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approvals")
    decision = models.CharField(max_length=10, choices=DECISION_CHOICES)
    comment = models.TextField()
    # What was decided on: the bundle digest when sealed, else the run id (decisions bind to evidence).
    subject_digest = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created"]
        # One decision per approver per run: a second click cannot count twice.
        constraints = [models.UniqueConstraint(fields=["run", "approver"], name="approval_one_per_approver")]

    def __str__(self) -> str:
        return f"{self.run.run_id}: {self.decision} by {self.approver}"


# ---- issue 7: signed approvals, single use, promotion records --------------------------------


class ApprovalSigningKey(models.Model):
    """One approver's own Ed25519 key (created on first decision). The private half is stored
    encrypted under the KEK (`promote/core/approvals.py`), bound to the username."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_key"
    )
    keyid = models.CharField(max_length=64, unique=True)
    public_key_pem = models.TextField()
    private_key_encrypted = models.TextField()  # aegis.approver-key/v1 JSON (AES-256-GCM)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user} {self.keyid[:16]}"


class SignedApproval(models.Model):
    """The DSSE envelope produced for a decision on a sealed bundle (downloadable as approval.json)."""

    approval = models.OneToOneField(Approval, on_delete=models.PROTECT, related_name="signed")
    jti = models.CharField(max_length=64, unique=True)
    bundle_digest = models.CharField(max_length=80, db_index=True)
    keyid = models.CharField(max_length=64)
    envelope = models.JSONField()
    ledger_index = models.PositiveBigIntegerField(null=True, blank=True)
    expires = models.DateTimeField()
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"approval {self.jti} on {self.bundle_digest[:19]}…"


class UsedApprovalToken(models.Model):
    """A spent approval: the unique jti makes a second use fail atomically (replay, or a race)."""

    jti = models.CharField(max_length=64, unique=True)
    bundle_digest = models.CharField(max_length=80)
    used_by = models.CharField(max_length=150)
    used = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.jti} used by {self.used_by}"


class PromotionRecord(models.Model):
    """One promotion attempt (passed or refused): the plain record, sealed into the ledger."""

    bundle = models.ForeignKey(
        "evidence.Bundle", null=True, blank=True, on_delete=models.PROTECT, related_name="promotions"
    )
    bundle_digest = models.CharField(max_length=80, blank=True, db_index=True)  # as presented
    run_id = models.CharField(max_length=100, blank=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150)
    via = models.CharField(max_length=10)  # cli | web | api
    mode = models.CharField(max_length=10)  # dry-run | live
    live_requested = models.BooleanField(default=False)
    outcome = models.CharField(max_length=10, db_index=True)  # refused | dry_run | applied | failed
    record = models.JSONField()
    record_digest = models.CharField(max_length=80, unique=True)
    ledger_index = models.PositiveBigIntegerField(null=True, blank=True)
    verification = models.JSONField(null=True, blank=True)
    verification_digest = models.CharField(max_length=80, blank=True)
    verification_ledger_index = models.PositiveBigIntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"promotion {self.outcome} of {self.run_id or self.bundle_digest[:19]} by {self.actor_name}"
