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
