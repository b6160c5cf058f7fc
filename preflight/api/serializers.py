"""API shapes for runs, events, approvals. Parsing only; rules live in services and policy."""

from __future__ import annotations

from rest_framework import serializers

from preflight.core.resilience import failures_option
from preflight.models import PreflightRun, RunEvent
from preflight.selectors import run_approval_state


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField turns `123` into "123", which would let a
    number through as a config line or title; the schema says string, so anything else is a 400."""

    default_error_messages = {"invalid": "Must be a string (text), not a {type}."}

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid", type=_json_type(data))
        return super().to_internal_value(data)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {"list": "list", "dict": "object"}.get(type(value).__name__, type(value).__name__)


class StrictSlugField(serializers.SlugField):
    """A slug given as a string (`123` is not the lab "123")."""

    default_error_messages = {"invalid_type": "Must be a string (text), not a {type}."}

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid_type", type=_json_type(data))
        return super().to_internal_value(data)


class RunSubmitSerializer(serializers.Serializer):
    lab = StrictSlugField(help_text="Lab name, e.g. triangle")
    title = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, default="", max_length=10_000)
    devices = serializers.DictField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False),
        required=False,
        default=dict,
        help_text='Config lines per device: {"r1": "ip route ...\\n"}',
    )
    desired = serializers.DictField(
        child=StrictCharField(allow_blank=False, trim_whitespace=False, max_length=64 * 1024),
        required=False,
        default=dict,
        help_text='Full intended config per changed router, instead of devices: {"r3": "frr version ...\\n"}; '
                  "frr-reload's delta from the lab's baseline is what runs (change.desired in the result)",
    )
    intent = StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=4000,
        help_text="Natural-language intent, instead of devices (LLM proposal)",
    )
    expect = serializers.DictField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Intended effects: prefixes_added/removed/changed, sessions_removed/added",
    )
    frameworks = serializers.ListField(
        child=StrictCharField(max_length=100), required=False, default=list
    )
    backend = serializers.ChoiceField(
        choices=["netns", "simulator"], required=False, allow_blank=True, default=""
    )
    failures = StrictCharField(
        required=False, allow_blank=True, default="", max_length=10,
        help_text="Failure scenarios before and after the change: auto (default: the lab's and one per link of "
                  "the changed routers, at most AEGIS_FAILURE_SCENARIOS_MAX), all, none, or a number",
    )

    def validate_failures(self, value: str) -> str | None:
        try:
            return failures_option(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class RunAcceptedSerializer(serializers.Serializer):
    run_id = serializers.CharField()
    status = serializers.CharField()
    url = serializers.CharField()
    events_url = serializers.CharField()


class RunEventSerializer(serializers.ModelSerializer):
    at = serializers.DateTimeField(source="created")

    class Meta:
        model = RunEvent
        fields = ["seq", "step", "status", "message", "data", "at"]


class RunSerializer(serializers.ModelSerializer):
    lab = serializers.CharField(source="change.lab.name")
    title = serializers.CharField(source="change.title")
    operator = serializers.CharField(source="change.operator.username")
    frameworks = serializers.ListField(source="change.frameworks", child=serializers.CharField())
    approval_state = serializers.SerializerMethodField()
    sealed = serializers.SerializerMethodField()

    class Meta:
        model = PreflightRun
        fields = [
            "run_id",
            "lab",
            "title",
            "operator",
            "backend",
            "status",
            "verdict",
            "risk_tier",
            "risk_score",
            "error",
            "last_seq",
            "bundle_digest",
            "sealed",
            "approval_state",
            "frameworks",
            "created",
            "started",
            "finished",
        ]

    def get_approval_state(self, run: PreflightRun) -> str:
        return run_approval_state(run)

    def get_sealed(self, run: PreflightRun) -> bool:
        return bool(run.bundle_digest)
