"""setup_roles is idempotent; demo_users makes one user per role and shows each password once."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_setup_roles_twice_gives_the_same_groups_and_permissions():
    call_command("setup_roles", stdout=io.StringIO())
    first = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    # an admin adds a stray permission by hand; the second run converges back to the table
    Group.objects.get(name="auditor").permissions.add(*Group.objects.get(name="approver").permissions.all())
    call_command("setup_roles", stdout=io.StringIO())
    second = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert first == second
    assert {"operator", "approver", "auditor"} <= set(first)
    assert "decide_preflightrun" in first["approver"] and "decide_preflightrun" not in first["auditor"]
    assert "view_bundle" in first["auditor"] and "add_changerequest" in first["operator"]


def test_demo_users_prints_each_password_once_and_they_work(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = io.StringIO()
    call_command("demo_users", stdout=out)
    passwords = dict(re.findall(r"^(\w+)\s+role=\w+\s+password=(\S+)$", out.getvalue(), re.M))
    assert set(passwords) == {"operator", "approver", "auditor"}
    for username, password in passwords.items():
        user = authenticate(username=username, password=password)
        assert user is not None and user.groups.filter(name=username).exists()
    again = io.StringIO()
    call_command("demo_users", stdout=again)
    assert "password=" not in again.getvalue()  # shown once; a re-run keeps them
    assert get_user_model().objects.count() == 3


def test_sync_labs_registers_the_bundled_labs():
    out = io.StringIO()
    call_command("sync_labs", stdout=out)
    assert "triangle: 3 routers (r1, r2, r3)" in out.getvalue()
