"""The auditor's bundle browser: filter, detail, download JSON and PDF, verify. Read-only."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from aegis_base.core import policy
from aegis_base.selectors import actor_of
from aegis_base.services import audit_record
from compliance.selectors import framework_choices
from evidence.api import bundles
from evidence.filtersets import BundleFilterSet, filter_errors


def bundles_filtered(user, params) -> tuple[BundleFilterSet, dict[str, str]]:
    """The bundles `user` may see, narrowed by the filters in `params`, and the filters' errors."""
    filterset = BundleFilterSet(params, queryset=bundles.bundles_for_user(user))
    return filterset, filter_errors(filterset) if not filterset.is_valid() else {}


@login_required
def bundle_list(request: HttpRequest) -> HttpResponse:
    if not policy.can_browse_bundles(actor_of(request.user)):
        raise PermissionDenied("Only auditors browse sealed bundles.")
    filterset, errors = bundles_filtered(request.user, request.GET)
    rows = list(filterset.qs[:200]) if not errors else []
    return render(
        request,
        "evidence/bundles.html",
        {
            "bundles": rows,
            "filters": filterset.form.cleaned_data if not errors else {},
            "errors": errors,
            "facets": bundles.bundle_facets(request.user),
            "frameworks": framework_choices(),
            "nav": "bundles",
        },
        status=400 if errors else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def bundle_detail(request: HttpRequest, bundle_id: str) -> HttpResponse:
    """Detail; POST runs the verifier and shows each check."""
    bundle = bundles.access_bundle(request.user, bundle_id)
    checks = None
    if request.method == "POST":
        checks = bundles.bundle_checks(bundle)
        audit_record(
            actor=request.user,
            action="bundle.verify",
            target=f"bundle:{bundle.pk}",
            detail={"verified": bundles.checks_verified(checks)},
        )
    doc = json.loads(bundle.bundle_json)
    return render(
        request,
        "evidence/bundle.html",
        {
            "bundle": bundle,
            "checks": checks,
            "verified": bundles.checks_verified(checks or []),
            "doc_keys": sorted(doc.keys()),
            "ledger": doc.get("ledger") or {},
            "nav": "bundles",
        },
    )


@login_required
def bundle_download(request: HttpRequest, bundle_id: str, kind: str) -> HttpResponse:
    return bundle_download_response(request.user, bundle_id, kind)


def bundle_download_response(user: object, bundle_id: str, kind: str) -> HttpResponse:
    """The sealed bundle JSON (exact sealed bytes) or the examiner PDF as an attachment, audited.

    Shared by the page and the API; access is checked here (404 unknown, 403 not allowed).
    """
    bundle = bundles.access_bundle(user, bundle_id)
    audit_record(actor=user, action=f"bundle.download_{kind}", target=f"bundle:{bundle.pk}")
    if kind == "json":
        response = HttpResponse(bundle.bundle_json.encode("ascii"), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="aegis-bundle-{bundle.run_id}.json"'
    else:
        response = HttpResponse(bundles.bundle_pdf_bytes(bundle), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="aegis-report-{bundle.run_id}.pdf"'
    return response
