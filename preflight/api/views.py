"""REST API for runs. Each view parses, authorizes and makes one service/selector call.

Errors: 400 with field errors, 401 without credentials, 403 when the role or object is not
allowed, 404 for an unknown id. Token auth first, so an anonymous client is told to send a token.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from aegis_base.api.views import AegisAPIView, filter_param, filters_blank_refuse
from aegis_base.core import policy
from preflight import selectors, services
from preflight.api.serializers import (
    RunAcceptedSerializer,
    RunEventSerializer,
    RunSerializer,
    RunSubmitSerializer,
)
from preflight.filtersets import RunFilterSet
from preflight.models import Lab, PreflightRun


def api_errors(errors: dict[str, list[str]]) -> dict[str, Any]:
    """ChangeInvalid field names to API field errors: device:r1 -> {"devices": {"r1": [...]}}."""
    out: dict[str, Any] = {}
    for key, messages in errors.items():
        if key.startswith("device:"):
            out.setdefault("devices", {})[key.split(":", 1)[1]] = messages
        elif key.startswith("desired:"):
            out.setdefault("desired", {})[key.split(":", 1)[1]] = messages
        elif key == "__all__":
            out.setdefault("non_field_errors", []).extend(messages)
        elif key in (
            "prefixes_added",
            "prefixes_removed",
            "prefixes_changed",
            "sessions_removed",
            "sessions_added",
        ):
            out.setdefault("expect", {})[key] = messages
        else:
            out[key] = messages
    return out


class RunSubmitView(AegisAPIView):
    @extend_schema(
        request=RunSubmitSerializer,
        responses={202: RunAcceptedSerializer},
        examples=[
            OpenApiExample(
                "a static route",
                value={
                    "lab": "triangle",
                    "title": "Null-route 10.42.0.0/24 on r3",
                    "devices": {"r3": "ip route 10.42.0.0/24 Null0\n"},
                    "expect": {"prefixes_added": {"r3": ["10.42.0.0/24"]}},
                    "backend": "simulator",
                },
                request_only=True,
            )
        ],
        summary="Submit a change for preflight; the run executes in the background",
    )
    def post(self, request: Request) -> Response:
        if not policy.can_submit(selectors.actor_of(request.user)):
            raise PermissionDenied("Only members of the operator group can submit changes.")
        ser = RunSubmitSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        lab = Lab.objects.filter(name=data["lab"], enabled=True).first()
        if lab is None:
            names = ", ".join(selectors.labs_enabled().values_list("name", flat=True)) or "(none registered)"
            raise ValidationError({"lab": [f"Unknown lab {data['lab']!r}; available: {names}."]})
        submission = services.Submission(
            lab=lab,
            title=data["title"],
            description=data["description"],
            devices=data["devices"],
            desired=data["desired"] or None,
            intent=data["intent"],
            expect=data["expect"],
            frameworks=data["frameworks"],
            backend=data["backend"],
            options={"failures": data["failures"]} if data.get("failures") else {},
            source="api",
            via="api",
        )
        try:
            run = services.run_start(operator=request.user, submission=submission)
        except services.ChangeInvalid as exc:
            raise ValidationError(api_errors(exc.errors)) from None
        body = {
            "run_id": run.run_id,
            "status": run.status,
            "url": reverse("api:run", args=[run.run_id]),
            "events_url": reverse("api:run_events", args=[run.run_id]),
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


RUN_FILTERS = [
    filter_param("status", enum=[s for s, _ in PreflightRun.STATUS_CHOICES]),
    filter_param("verdict", enum=[v for v, _ in PreflightRun.VERDICT_CHOICES]),
    filter_param("risk_tier", enum=["low", "medium", "high"]),
    filter_param("backend", max_length=20),
    filter_param("lab", max_length=64),
]
# RunEvent.seq is a 32-bit integer column; a larger `after` is refused, not sent to the database.
SEQ_MAX = 2**31 - 1


class RunListView(AegisAPIView):
    api_refusals = (400,)  # any signed-in user may list: the list holds only what they may see

    @extend_schema(
        parameters=RUN_FILTERS,
        responses=RunSerializer(many=True),
        summary="Runs you may see, newest first (100 at most), filtered by status, verdict, risk, backend, lab",
    )
    def get(self, request: Request) -> Response:
        filters_blank_refuse(request.query_params, RUN_FILTERS)
        filterset = RunFilterSet(request.query_params, queryset=selectors.runs_for_user(request.user))
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        runs = selectors.runs_listed(filterset.qs).order_by("-created")[:100]
        return Response(RunSerializer(runs, many=True).data)


class RunDetailView(AegisAPIView):
    @extend_schema(responses=RunSerializer, summary="One run: status, verdict, risk, seal")
    def get(self, request: Request, run_id: str) -> Response:
        return Response(RunSerializer(selectors.access_run(request.user, run_id)).data)


class RunResultView(AegisAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The result document (docs/result-format.md)")
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.access_run(request.user, run_id)
        if run.result is None:
            return Response(
                {"detail": f"Run {run.run_id} has no result yet (status {run.status})."},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(run.result)


class RunEventsView(AegisAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": SEQ_MAX},
                description="Only events with seq greater than this (default 0: all)",
            )
        ],
        responses=RunEventSerializer(many=True),
        summary="Progress events after a seq (catch-up)",
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.access_run(request.user, run_id)
        raw = request.query_params.get("after", "0") or "0"
        try:
            after = int(raw)
            if not 0 <= after <= SEQ_MAX:
                raise ValueError
        except ValueError:
            raise ValidationError(
                {"after": [f"{raw[:40]!r} is not a whole number from 0 to {SEQ_MAX} (a seq)."]}
            ) from None
        return Response(RunEventSerializer(selectors.events_after(run, after), many=True).data)
