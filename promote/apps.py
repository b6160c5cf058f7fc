from django.apps import AppConfig


class PromoteConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "promote"
