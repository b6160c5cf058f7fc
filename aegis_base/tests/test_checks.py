"""Settings that contradict each other stop `manage.py check`, with the setting named and a fix."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from aegis_base.checks import settings_check
from perimeter.egress import egress_check, policy_allow_list


def test_the_shipped_settings_pass():
    assert settings_check() == []


@pytest.mark.parametrize(
    "name, value, error_id, words",
    [
        ("AEGIS_HIGH_RISK_APPROVERS", 0, "aegis.E001", "at least one approver"),
        ("AEGIS_EGRESS_ALLOW", ["10.0.0.0/33"], "aegis.E002", "'10.0.0.0/33'"),
        ("AEGIS_TWIN_BACKEND", "docker", "aegis.E003", "not a twin backend"),
        ("AEGIS_TWIN_CONVERGE_TIMEOUT_S", 0, "aegis.E004", "must be positive"),
        ("AEGIS_RUN_DISPATCH", "later", "aegis.E005", "not a dispatch mode"),
        ("AEGIS_INPROCESS_WORKERS", 0, "aegis.E006", "never start"),
        ("AEGIS_APPROVAL_TTL_S", 0, "aegis.E008", "expired at once"),
    ],
)
def test_a_contradicting_setting_is_refused_by_name(settings, name, value, error_id, words):
    # given one setting that cannot work, when the system checks run, then that setting is named
    setattr(settings, name, value)
    (error,) = settings_check()
    assert error.id == error_id and name in error.msg and words in error.msg and error.hint
    with pytest.raises(SystemCheckError, match=error_id):
        call_command("check")


def test_the_http_backend_without_agents_is_refused(settings):
    settings.AEGIS_TWIN_BACKEND = "http"
    settings.AEGIS_TWIN_AGENTS = []
    (error,) = settings_check()
    assert error.id == "aegis.E007" and "AEGIS_TWIN_AGENTS" in error.msg
    settings.AEGIS_TWIN_AGENTS = ["http://127.0.0.1:5757"]
    assert settings_check() == []


def test_the_egress_policy_follows_the_setting_and_a_malformed_one_allows_nothing(settings):
    # given the site policy set from settings at startup, when the setting changes, then the core follows
    settings.AEGIS_EGRESS_ALLOW = ["127.0.0.0/8"]
    assert policy_allow_list() == ["127.0.0.0/8"]
    assert egress_check("127.0.0.1", 80, "test") == "127.0.0.1"
    # and a malformed list fails closed (the system check names the entry)
    settings.AEGIS_EGRESS_ALLOW = ["127.0.0.0/33"]
    assert policy_allow_list() == []
