"""REST API of the bundle browser: list with filters, detail, downloads, verify. Read-only."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from aegis_base.api.views import AegisAPIView, filter_param, filters_blank_refuse
from aegis_base.selectors import actor_of
from aegis_base.services import audit_record
from evidence.api import bundles
from evidence.api.serializers import BundleSerializer, BundleVerifySerializer
from evidence.filtersets import VERDICTS
from evidence.views import bundle_download_response, bundles_filtered

FILTER_PARAMS = [
    filter_param("date_from", fmt="date", description="YYYY-MM-DD"),
    filter_param("date_to", fmt="date", description="YYYY-MM-DD"),
    filter_param("lab", max_length=200),
    filter_param("verdict", enum=VERDICTS),
    filter_param("framework", max_length=100),
    filter_param("operator", max_length=150),
]


class BundleListView(AegisAPIView):
    @extend_schema(
        parameters=FILTER_PARAMS,
        responses=BundleSerializer(many=True),
        summary="Sealed bundles you may see (auditors: all), newest first, 500 at most",
    )
    def get(self, request: Request) -> Response:
        actor = actor_of(request.user)
        if not actor.is_superuser and not actor.groups:
            raise PermissionDenied("You are in no AEGIS role group.")
        filters_blank_refuse(request.query_params, FILTER_PARAMS)
        filterset, errors = bundles_filtered(request.user, request.query_params)
        if errors:
            raise ValidationError({k: [v] for k, v in errors.items()})
        return Response(BundleSerializer(filterset.qs[:500], many=True).data)


class BundleDetailView(AegisAPIView):
    @extend_schema(responses=BundleSerializer, summary="One sealed bundle's catalogue row")
    def get(self, request: Request, bundle_id: str) -> Response:
        return Response(BundleSerializer(bundles.access_bundle(request.user, bundle_id)).data)


class BundleDownloadView(AegisAPIView):
    def get(self, request: Request, bundle_id: str, kind: str) -> HttpResponse:
        return bundle_download_response(request.user, bundle_id, kind)


class BundleJsonView(BundleDownloadView):
    @extend_schema(
        responses={(200, "application/json"): OpenApiTypes.OBJECT},
        summary="Download the sealed bundle JSON (the exact sealed bytes)",
    )
    def get(self, request: Request, bundle_id: str, kind: str = "json") -> HttpResponse:
        return super().get(request, bundle_id, "json")


class BundlePdfView(BundleDownloadView):
    @extend_schema(
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
        summary="Download the examiner PDF (the sealed bundle attached inside)",
    )
    def get(self, request: Request, bundle_id: str, kind: str = "pdf") -> HttpResponse:
        return super().get(request, bundle_id, "pdf")


class BundleVerifyView(AegisAPIView):
    @extend_schema(
        request=None,
        responses=BundleVerifySerializer,
        summary="Run the offline verifier over the bundle with the site's keys; every check",
    )
    def post(self, request: Request, bundle_id: str) -> Response:
        bundle = bundles.access_bundle(request.user, bundle_id)
        checks = bundles.bundle_checks(bundle)
        verified = bundles.checks_verified(checks)
        audit_record(
            actor=request.user,
            action="bundle.verify",
            target=f"bundle:{bundle.pk}",
            detail={"verified": verified},
        )
        return Response({"verified": verified, "checks": checks})
