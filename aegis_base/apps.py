"""The base app: roles and actors, the audit trail, the API base view, the policy rules.

At startup it hands the site's egress policy to the Django-free `perimeter.egress` (the one
place that module's settings come from), and again when a test changes the setting.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import setting_changed

from aegis_base import checks  # noqa: F401 - registers the settings system checks
from perimeter.egress import egress_configure


def _egress_reconfigure(*, setting: str, **_: Any) -> None:
    if setting == "AEGIS_EGRESS_ALLOW":
        _egress_configure_from_settings()


def _egress_configure_from_settings() -> None:
    try:
        egress_configure(list(settings.AEGIS_EGRESS_ALLOW))
    except ValueError:
        # Fail closed: a malformed allow-list allows nothing; the system check (aegis.E002) names the entry.
        egress_configure([])


class AegisBaseConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "aegis_base"
    verbose_name = "AEGIS base"

    def ready(self) -> None:
        _egress_configure_from_settings()
        # setting_changed is sent by override_settings / pytest-django's `settings` only.
        setting_changed.connect(_egress_reconfigure, dispatch_uid="aegis_base.egress")
