"""Rows every app writes: the audit trail.

`AuditEntry` lived in preflight/ until the apps were put in a one-way order (issue 16); it
moved down here so evidence and promote can record without importing preflight. Its table
was renamed by migration (aegis_base 0001), its rows kept.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """Who did what, when: submissions, decisions, downloads, verifications. Written, never edited."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150)  # kept even if the user is deleted
    action = models.CharField(max_length=40)  # run.submit, approval.approve, bundle.download, ...
    target = models.CharField(max_length=100)  # e.g. run:20261125-193000-ab12cd
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target}"
