"""Django shell of the compliance core: site defaults from settings."""

from __future__ import annotations

from django.conf import settings

from compliance.catalogues import frameworks_check
from compliance.crosswalk import controls_for


def frameworks_default() -> list[str]:
    """The site's default frameworks (settings.AEGIS_FRAMEWORKS), checked against the catalogues."""
    return frameworks_check(list(settings.AEGIS_FRAMEWORKS))


def controls_for_run(
    result: dict, frameworks: list[str] | None = None, *, approvals: list[dict] | None = None, **kwargs
) -> list[dict]:
    """`controls_for` with the frameworks chosen for the change, or the site default when none were chosen."""
    kwargs.setdefault("high_risk_approvers", settings.AEGIS_HIGH_RISK_APPROVERS)
    return controls_for(result, frameworks or frameworks_default(), approvals=approvals, **kwargs)


def approvals_for_bundle(digest: str) -> list[dict]:
    """Decisions recorded on the bundle with this digest, oldest first, as crosswalk approval dicts.

    Read-only; assumes the caller may read the bundle (auditor, approver, the run's operator).
    """
    from promote.models import Approval

    rows = Approval.objects.filter(subject_digest=digest).select_related("approver").order_by("created")
    return [
        {
            "approver": row.approver.get_username(),
            "decision": row.decision,
            "at": row.created.isoformat(),
            "bundle_digest": row.subject_digest,
        }
        for row in rows
    ]
