"""Shared fixtures of the web tests: personas, the bundled lab, runs on the simulator.

Imported by the `conftest.py` of preflight/, promote/ and evidence/ web tests. Runs execute
"inline" (in the committing thread) so a test sees the finished run right after submitting;
the in-process worker and the Celery worker have their own tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from aegis_base.services import roles_setup
from preflight import services
from preflight.models import Lab, PreflightRun

REPO = Path(__file__).resolve().parents[3]

def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for an AEGIS process a test starts (worker, serve): this test's database and
    folders, none of the caller's AEGIS_/CELERY_/REDIS_URL settings, then `extra`."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "CELERY_", "REDIS_URL"))}
    env.update({
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "AEGIS_HOME": str(tmp_path / "home"),
        "AEGIS_RUNS_DIR": str(tmp_path / "runs"),
        "AEGIS_SITE_KEY_FILE": str(tmp_path / "home" / "keys" / "site_ed25519.pem"),
        "AEGIS_LABS_DIR": str(REPO / "labs"),
    })
    env.update(extra)
    return env


# Changes on labs/triangle and the verdict the pipeline gives them (simulator backend).
SHIP_READY = {
    "devices": {"r3": "ip route 10.42.0.0/24 Null0\n"},
    "expect": {"prefixes_added": {"r3": ["10.42.0.0/24"]}},
}
# An effect beyond the intent the line carries: "add a route" to r1's loopback that in fact
# replaces r3's BGP path (risk-rubric/2; a plain new static route is intended by inference).
NEEDS_APPROVAL = {"devices": {"r3": "ip route 10.255.0.1/32 10.0.23.0\n"}, "expect": None}
BLOCKED = {"devices": {"r3": "ip route bogus\n"}, "expect": None}  # FRR's parser refuses it


@pytest.fixture(autouse=True)
def aegis_dirs(settings, tmp_path):
    """Keys, bundles and runs of a test live in its own temporary folder, never in the repo."""
    settings.AEGIS_HOME = tmp_path / "home"
    settings.AEGIS_RUNS_DIR = tmp_path / "runs"
    settings.AEGIS_SITE_KEY_FILE = tmp_path / "home" / "keys" / "site_ed25519.pem"
    settings.AEGIS_LABS_DIR = REPO / "labs"
    settings.AEGIS_RUN_DISPATCH = "inline"
    # Persona passwords need no key stretching in tests (PBKDF2 costs ~0.3 s per user).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return tmp_path


@pytest.fixture
def roles(db):
    roles_setup()


def _user(username: str, *groups: str):
    user = get_user_model().objects.create_user(username=username, password=f"{username}-pw-12345")
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def operator(roles):
    return _user("olivia", "operator")


@pytest.fixture
def operator2(roles):
    return _user("oscar", "operator")


@pytest.fixture
def approver(roles):
    return _user("alice", "approver")


@pytest.fixture
def approver2(roles):
    return _user("arnold", "approver")


@pytest.fixture
def auditor(roles):
    return _user("audrey", "auditor")


@pytest.fixture
def outsider(roles):
    return _user("oddjob")


@pytest.fixture
def lab(db) -> Lab:
    services.lab_sync()
    return Lab.objects.get(name="triangle")


@pytest.fixture
def submit(lab, django_capture_on_commit_callbacks):
    """submit(user, change, **overrides) -> the run, executed inline and refreshed."""

    def _submit(
        user,
        change: dict,
        *,
        backend: str = "simulator",
        title: str = "Add a static route",
        frameworks: list[str] | None = None,
    ) -> PreflightRun:
        with django_capture_on_commit_callbacks(execute=True):
            run = services.run_start(
                operator=user,
                submission=services.Submission(
                    lab=lab,
                    title=title,
                    devices=change["devices"],
                    expect=change["expect"],
                    frameworks=frameworks if frameworks is not None else ["nist-800-53r5"],
                    backend=backend,
                ),
            )
        run.refresh_from_db()
        return run

    return _submit
