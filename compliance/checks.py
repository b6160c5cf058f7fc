"""System checks: a bad AEGIS_FRAMEWORKS value or a broken data file stops `manage.py check`, not a run."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from compliance.catalogues import CatalogueError, catalogues_load


@checks.register()
def compliance_data_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from compliance.crosswalk import crosswalk_load

    try:
        known = catalogues_load()
        crosswalk_load()
    except CatalogueError as exc:
        return [
            checks.Error(str(exc), hint="fix the named data file in compliance/data/", id="compliance.E002")
        ]
    unknown = [f for f in getattr(settings, "AEGIS_FRAMEWORKS", []) if f not in known]
    if unknown:
        return [
            checks.Error(
                f"AEGIS_FRAMEWORKS names unknown framework(s): {', '.join(unknown)}",
                hint=f"use comma-separated ids from: {', '.join(known)}",
                id="compliance.E001",
            )
        ]
    return []
