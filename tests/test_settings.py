"""The project boots from the environment alone."""

from django.conf import settings


def test_settings_come_from_the_environment():
    # given the test environment, when Django is configured, then the core apps are installed
    for app in ("preflight", "evidence", "promote", "compliance"):
        assert app in settings.INSTALLED_APPS
    assert settings.AEGIS_EGRESS_ALLOW, "an empty egress allow-list would refuse the LLM too"


def test_tests_run_on_the_real_database_when_asked(db):
    import os

    from django.db import connection

    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        assert connection.vendor == "postgresql"
