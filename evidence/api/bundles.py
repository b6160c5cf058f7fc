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

from aegis_base.core import policy
from aegis_base.selectors import actor_of
from evidence.models import Bundle


def bundles_for_user(user: Any) -> QuerySet[Bundle]:
    """Bundles the user may see, newest first: every one for auditors, their own for operators.

    Narrow it further with `evidence.filtersets.BundleFilterSet`.
    """
    actor = actor_of(user)
    qs = Bundle.objects.defer("bundle_json").order_by("-created")
    if not actor.is_authenticated:
        return qs.none()
    if not actor.has_role(policy.AUDITOR):
        qs = qs.filter(operator_username=actor.username)
    return qs


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
    if not policy.can_view_bundle(actor_of(user), bundle_operator=bundle.operator_username):
        raise PermissionDenied("Only auditors and the operator of the run see this bundle.")
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
