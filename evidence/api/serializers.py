from __future__ import annotations

from rest_framework import serializers

from evidence.models import Bundle


class BundleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Bundle
        fields = [
            "id",
            "run_id",
            "digest",
            "verdict",
            "tier",
            "lab_name",
            "operator_username",
            "frameworks",
            "keyid",
            "ledger_index",
            "created",
        ]


class BundleCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class BundleVerifySerializer(serializers.Serializer):
    verified = serializers.BooleanField()
    checks = BundleCheckSerializer(many=True)
