"""Django shell of the compliance core: site defaults from settings."""

from __future__ import annotations

from django.conf import settings

from compliance.catalogues import framework_list, frameworks_check
from compliance.crosswalk import controls_for


def frameworks_default() -> list[str]:
    """The site's default frameworks (settings.AEGIS_FRAMEWORKS), checked against the catalogues."""
    return frameworks_check(list(settings.AEGIS_FRAMEWORKS))


def framework_choices() -> list[dict[str, str]]:
    """The frameworks a change may be checked against: id and title, from the catalogues."""
    return [{"id": f["id"], "title": f.get("title", f["id"])} for f in framework_list()]


def controls_for_run(
    result: dict, frameworks: list[str] | None = None, *, approvals: list[dict] | None = None, **kwargs
) -> list[dict]:
    """`controls_for` with the frameworks chosen for the change, or the site default when none were chosen."""
    kwargs.setdefault("high_risk_approvers", settings.AEGIS_HIGH_RISK_APPROVERS)
    return controls_for(result, frameworks or frameworks_default(), approvals=approvals, **kwargs)
