"""Reads for the auditor's bundle browser (HTML and API), filtered by who may see what.

Kept next to the API because both the pages and the API use it; the evidence engineer's
`evidence/services.py` does the sealing and verification, this only finds and hands out rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from guardian.shortcuts import get_objects_for_user

from evidence.models import Bundle


def bundles_for_user(user: Any) -> QuerySet[Bundle]:
    """Bundles the user may see (`evidence.view_bundle`: on every bundle for auditors, on its own
    bundles for an operator, on those awaiting a decision for approvers), newest first.

    Narrow it further with `evidence.filtersets.BundleFilterSet`.
    """
    if not getattr(user, "is_authenticated", False):
        return Bundle.objects.none()
    qs = get_objects_for_user(user, "evidence.view_bundle", klass=Bundle, accept_global_perms=True)
    return qs.defer("bundle_json").order_by("-created")


def may_view_bundle(user: Any, bundle: Bundle) -> bool:
    """The one access rule of a bundle: the permission on every bundle (auditors), or on this one."""
    return bool(getattr(user, "is_authenticated", False)) and (
        user.has_perm("evidence.view_bundle") or user.has_perm("evidence.view_bundle", bundle)
    )


def bundle_facets(user: Any) -> dict[str, list[str]]:
    """The values the filters offer (labs, verdicts, operators) among the visible bundles."""
    qs = bundles_for_user(user)
    return {
        "labs": sorted(set(qs.values_list("lab_name", flat=True))),
        "operators": sorted(set(qs.values_list("operator_username", flat=True)) - {""}),
        "verdicts": ["blocked", "needs_approval", "ship_ready"],
    }


def bundle_or_404(bundle_id: Any) -> Bundle:
    """The bundle row for an id from a URL; Http404 for an unknown or malformed id (no access check)."""
    try:
        pk = int(bundle_id)
    except (TypeError, ValueError):
        raise Http404("No such bundle.") from None
    bundle = Bundle.objects.filter(pk=pk).first()
    if bundle is None:
        raise Http404("No such bundle.")
    return bundle


def access_bundle(user: Any, bundle_id: Any) -> Bundle:
    """One bundle, if the user may see it. Http404 when unknown, PermissionDenied when not allowed."""
    bundle = bundle_or_404(bundle_id)
    if not may_view_bundle(user, bundle):
        raise PermissionDenied("Only auditors, the operator of the run and its approvers see this bundle.")
    return bundle


def bundle_pdf_bytes(bundle: Bundle) -> bytes:
    """The examiner PDF: the sealed file when it is on this server, else rendered again from the bundle."""
    path = Path(bundle.pdf_path) if bundle.pdf_path else None
    roots = [Path(settings.AEGIS_RUNS_DIR).resolve(), Path(settings.AEGIS_HOME).resolve()]
    if path and path.is_file() and any(path.resolve().is_relative_to(r) for r in roots):
        return path.read_bytes()
    from evidence.services import bundle_report_render

    return bundle_report_render(bundle)


def bundle_checks(bundle: Bundle) -> list[dict[str, Any]]:
    """Run the offline verifier over the stored bundle with the site's trusted keys; one row per check."""
    from evidence.services import bundle_verify

    checks = bundle_verify(bundle.bundle_json.encode("ascii"))
    return [{"name": c.name, "ok": bool(c.ok), "detail": c.detail} for c in checks]


def checks_verified(checks: list[dict[str, Any]]) -> bool:
    # The verifier stops at the first failure, so "all ok" also needs the full set of checks.
    return bool(checks) and all(c["ok"] for c in checks) and len(checks) >= 10
