"""Serializers of the promote API: decisions on runs, promotion attempts."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from preflight.api.serializers import StrictCharField
from promote.models import SignedApproval


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    comment = StrictCharField(max_length=4000)


class ApprovalSerializer(serializers.Serializer):
    run_id = serializers.CharField(source="run.run_id")
    approver = serializers.CharField(source="approver.username")
    decision = serializers.CharField()
    comment = serializers.CharField()
    subject_digest = serializers.CharField()
    created = serializers.DateTimeField()
    # The decision signed as an in-toto approval (DSSE), for `manage.py promote --approval`;
    # null when the run had no sealed bundle to bind it to.
    signed_approval_url = serializers.SerializerMethodField()

    def get_signed_approval_url(self, approval) -> str | None:
        if not SignedApproval.objects.filter(approval_id=approval.pk).exists():
            return None
        return reverse("api:approval_json", args=[approval.pk])


class PromoteSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["dry_run", "live"], default="dry_run")


class PromotionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    outcome = serializers.CharField()
    mode = serializers.CharField()
    passed = serializers.SerializerMethodField()
    reasons = serializers.SerializerMethodField()
    record_digest = serializers.CharField()
    ledger_index = serializers.IntegerField(allow_null=True)
    record = serializers.JSONField()
    verification = serializers.JSONField(allow_null=True)
    record_url = serializers.SerializerMethodField()

    def get_passed(self, row) -> bool:
        return row.outcome in ("dry_run", "applied")

    def get_reasons(self, row) -> list[str]:
        return list(row.record.get("reasons") or [])

    def get_record_url(self, row) -> str:
        return reverse("api:promotion_json", args=[row.pk])
