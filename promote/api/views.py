"""REST API of promotion: start one (dry-run or live), read its record, download a signed approval.

Errors: 400 with field errors (bad mode), 409 when the site's device inventory is unset, invalid or
does not cover the bundle, 401 without credentials, 403 when the role or object is not allowed, 404
for an unknown id. A refused
promotion is not an HTTP error: it is an attempt with a record (200, `outcome: refused`).
"""

from __future__ import annotations

import json

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from aegis_base.api.views import AegisAPIView, filter_param, filters_blank_refuse
from aegis_base.core import policy
from aegis_base.selectors import actor_of
from preflight import selectors as preflight_selectors
from preflight.api.serializers import RunSerializer
from promote import selectors, services
from promote.api.serializers import (
    ApprovalSerializer,
    DecisionSerializer,
    PromoteSerializer,
    PromotionSerializer,
)
from promote.filtersets import ApprovalFilterSet


def _json_download(doc: dict, filename: str) -> HttpResponse:
    body = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class BundlePromoteView(AegisAPIView):
    api_also_refuses = (409,)

    @extend_schema(
        request=PromoteSerializer,
        responses=PromotionSerializer,
        examples=[OpenApiExample("dry run", value={"mode": "dry_run"}, request_only=True)],
        summary="Promote a sealed bundle with its signed approvals to the site inventory (dry-run by default)",
    )
    def post(self, request: Request, bundle_id: str) -> Response:
        bundle_row = selectors.access_bundle_to_promote(request.user, bundle_id)
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # The inventory is the site's (AEGIS_DEVICE_INVENTORY), never one sent in the request: its
        # entries name key files on this server, which a caller must not be able to choose.
        try:
            devices = services.inventory_site()
            bundle = services.bundle_read(bundle_row.bundle_json.encode("ascii"))
            services.inventory_covers(bundle, devices)
        except services.PromotionInputError as exc:
            # The request is fine; the site's inventory cannot carry it out: a conflict with the
            # site's state (409), which the administrator resolves, not the caller's input (400).
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        row = services.promotion_attempt(
            actor=request.user,
            bundle=bundle,
            approvals=selectors.signed_approvals_for_bundle(bundle_row.digest),
            devices=devices,
            live=body.validated_data["mode"] == "live",
            via="api",
        )
        return Response(PromotionSerializer(row).data)


class PromotionDetailView(AegisAPIView):
    @extend_schema(responses=PromotionSerializer, summary="One promotion attempt and its record")
    def get(self, request: Request, record_id: str) -> Response:
        return Response(PromotionSerializer(selectors.access_promotion(request.user, record_id)).data)


class PromotionJsonView(AegisAPIView):
    @extend_schema(
        responses={(200, "application/json"): OpenApiTypes.OBJECT}, summary="The plain promotion record"
    )
    def get(self, request: Request, record_id: str) -> HttpResponse:
        row = selectors.access_promotion(request.user, record_id)
        return _json_download(row.record, f"aegis-promotion-{row.pk}.json")


class ApprovalEnvelopeView(AegisAPIView):
    @extend_schema(
        responses={(200, "application/json"): OpenApiTypes.OBJECT},
        summary="A decision's signed approval (DSSE envelope), for `manage.py promote --approval`",
    )
    def get(self, request: Request, approval_id: str) -> HttpResponse:
        row = selectors.access_signed_approval(request.user, approval_id)
        return _json_download(
            row.envelope, f"aegis-approval-{row.approval.run.run_id}-{row.approval.approver}.json"
        )


APPROVAL_FILTERS = [filter_param("decision", enum=["approve", "reject"]), filter_param("approver", max_length=150)]


class RunApprovalsView(AegisAPIView):
    @extend_schema(
        parameters=APPROVAL_FILTERS,
        responses=ApprovalSerializer(many=True),
        summary="Decisions recorded on a run, oldest first (filter by decision, approver)",
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = preflight_selectors.access_run(request.user, run_id)
        filters_blank_refuse(request.query_params, APPROVAL_FILTERS)
        filterset = ApprovalFilterSet(request.query_params, queryset=selectors.approvals_of(run))
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        return Response(ApprovalSerializer(filterset.qs, many=True).data)

    @extend_schema(
        request=DecisionSerializer,
        responses={201: ApprovalSerializer},
        examples=[
            OpenApiExample(
                "approve", value={"decision": "approve", "comment": "Blast radius as intended."}, request_only=True
            )
        ],
        summary="Approve or reject a run that needs approval (approvers; never your own)",
    )
    def post(self, request: Request, run_id: str) -> Response:
        if not actor_of(request.user).has_role(policy.APPROVER):
            raise PermissionDenied("Only members of the approver group can approve or reject runs.")
        run = preflight_selectors.access_run(request.user, run_id)
        ser = DecisionSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            approval = services.approval_decide(run=run, approver=request.user, **ser.validated_data)
        except services.DecisionInvalid as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        except services.DecisionRefused as exc:
            raise PermissionDenied(str(exc)) from None
        return Response(ApprovalSerializer(approval).data, status=status.HTTP_201_CREATED)


class ApprovalQueueView(AegisAPIView):
    @extend_schema(responses=RunSerializer(many=True), summary="Runs waiting for your decision, oldest first")
    def get(self, request: Request) -> Response:
        if not actor_of(request.user).has_role(policy.APPROVER):
            raise PermissionDenied("Only members of the approver group see the sign-off queue.")
        return Response(RunSerializer(preflight_selectors.approval_queue(request.user), many=True).data)
