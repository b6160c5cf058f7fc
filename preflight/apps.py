from django.apps import AppConfig


class PreflightConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "preflight"
