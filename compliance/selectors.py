"""Django shell of the compliance core: site defaults from settings."""

from __future__ import annotations

from django.conf import settings

from compliance.catalogues import framework_list, frameworks_check


def frameworks_default() -> list[str]:
    """The site's default frameworks (settings.AEGIS_FRAMEWORKS), checked against the catalogues."""
    return frameworks_check(list(settings.AEGIS_FRAMEWORKS))


def framework_choices() -> list[dict[str, str]]:
    """The frameworks a change may be checked against: id and title, from the catalogues."""
    return [{"id": f["id"], "title": f.get("title", f["id"])} for f in framework_list()]
