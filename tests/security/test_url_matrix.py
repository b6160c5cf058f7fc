"""Persona x URL matrix over every URL the resolver knows: pages, API, admin, static.

The rows are generated from `get_resolver()`: a URL pattern without a stated expectation fails
`test_every_url_has_an_expectation`, so a new page or endpoint cannot go unreviewed. Each cell is
the status one persona gets:

    anon      not signed in (pages: 302 to the sign-in page; API: 401)
    owner     the operator whose change the run is (olivia)
    other_op  another operator: the objects are not theirs (403)
    approver  the approver who decided on the run (alice)
    auditor   reads every sealed bundle, nothing else
    staff     the site administrator (Django staff and superuser)
    outsider  signed in, in no AEGIS role group

Pages are asked with the session, the API with a token (as a script would). POSTs carry bodies
that fail validation, so an allowed persona gets 400/200-with-form-errors (it got past
authorization) and a refused one 403/401/302: no cell depends on another's writes. Runs on the
simulator (no twin); one sealed run needing approval, approved by alice, and a dry-run promotion.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from evidence.models import Bundle
from preflight.tests.web.fixtures import NEEDS_APPROVAL
from promote.models import PromotionRecord, SignedApproval
from promote.services import approval_decide

pytestmark = pytest.mark.django_db

PERSONAS = ["anon", "owner", "other_op", "approver", "auditor", "staff", "outsider"]
L = 302  # to a sign-in page

# route (as the resolver spells it) -> {method: "anon owner other_op approver auditor staff outsider"}
EXPECTED: dict[str, dict[str, str]] = {
    # ---- sign-in and the start page ----
    "": {"GET": "302 302 302 302 302 302 403"},  # home: each role to its page, anon to sign-in
    "accounts/login/": {"GET": "200 200 200 200 200 200 200", "POST": "200 200 200 200 200 200 200"},
    "accounts/logout/": {"GET": "405 405 405 405 405 405 405", "POST": "302 302 302 302 302 302 302"},
    "preflight": {"GET": "302 200 200 403 403 200 403"},
    "preflight/": {"GET": "302 200 200 403 403 200 403", "POST": "302 400 400 403 403 400 403"},
    # ---- a run's pages: its operator and its approvers (and staff), nobody else ----
    "preflight/runs/<str:run_id>/": {"GET": "302 200 403 200 403 200 403"},
    "preflight/runs/<str:run_id>/result.json": {"GET": "302 200 403 200 403 200 403"},
    "preflight/runs/<str:run_id>/bundle.json": {"GET": "302 200 403 200 403 200 403"},
    "preflight/runs/<str:run_id>/report.pdf": {"GET": "302 200 403 200 403 200 403"},
    # ---- approvers ----
    "promote/queue/": {"GET": "302 403 403 200 403 200 403"},
    "promote/runs/<str:run_id>/": {"GET": "302 403 403 200 403 200 403", "POST": "302 403 403 400 403 400 403"},
    "promote/bundles/<str:bundle_id>/promote": {"GET": "302 405 405 405 405 405 405",
                                                "POST": "302 302 403 302 403 302 403"},
    # promotion records and signed approvals: the change's operator, approvers, auditors (read-only)
    "promote/promotions/<str:record_id>/": {"GET": "302 200 403 200 200 200 403"},
    "promote/promotions/<str:record_id>/record.json": {"GET": "302 200 403 200 200 200 403"},
    "promote/approvals/<str:approval_id>/approval.json": {"GET": "302 200 403 200 200 200 403"},
    # ---- the bundle browser: auditors all; the run's operator and approvers their bundle ----
    "evidence/bundles/": {"GET": "302 403 403 403 200 200 403"},
    "evidence/bundles/<str:bundle_id>/": {"GET": "302 200 403 200 200 200 403",
                                          "POST": "302 200 403 200 200 200 403"},
    "evidence/bundles/<str:bundle_id>/bundle.json": {"GET": "302 200 403 200 200 200 403"},
    "evidence/bundles/<str:bundle_id>/report.pdf": {"GET": "302 200 403 200 200 200 403"},
    # ---- API ----
    "api/preflight/run": {"GET": "401 405 405 405 405 405 405", "POST": "401 400 400 403 403 400 403"},
    "api/runs": {"GET": "401 200 200 200 200 200 200"},  # filtered to what each may see
    "api/runs/<str:run_id>": {"GET": "401 200 403 200 403 200 403"},
    "api/runs/<str:run_id>/events": {"GET": "401 200 403 200 403 200 403"},
    "api/runs/<str:run_id>/result": {"GET": "401 200 403 200 403 200 403"},
    "api/runs/<str:run_id>/approvals": {"GET": "401 200 403 200 403 200 403",
                                        "POST": "401 403 403 400 403 400 403"},  # staff: no own change
    "api/approvals/queue": {"GET": "401 403 403 200 403 200 403"},
    "api/bundles": {"GET": "401 200 200 200 200 200 403"},  # filtered; outsiders are in no role
    "api/bundles/<str:bundle_id>": {"GET": "401 200 403 200 200 200 403"},
    "api/bundles/<str:bundle_id>/json": {"GET": "401 200 403 200 200 200 403"},
    "api/bundles/<str:bundle_id>/pdf": {"GET": "401 200 403 200 200 200 403"},
    "api/bundles/<str:bundle_id>/verify": {"GET": "401 405 405 405 405 405 405",
                                           "POST": "401 200 403 200 200 200 403"},
    "api/bundles/<str:bundle_id>/promote": {"GET": "401 405 405 405 405 405 405",
                                            "POST": "401 400 403 400 403 400 403"},
    "api/promotions/<str:record_id>": {"GET": "401 200 403 200 200 200 403"},
    "api/promotions/<str:record_id>/json": {"GET": "401 200 403 200 200 200 403"},
    "api/approvals/<str:approval_id>/approval.json": {"GET": "401 200 403 200 200 200 403"},
    # The document and its page are public on purpose: they describe, they hold no data.
    "api/schema/": {"GET": "200 200 200 200 200 200 200"},
    "api/docs/": {"GET": "200 200 200 200 200 200 200"},
    r"api/^docs/assets/(?P<path>[\w.-]+)$": {"GET": "200 200 200 200 200 200 200"},
    r"^static/(?P<path>.*)$": {"GET": "200 200 200 200 200 200 200"},
    # ---- the admin's own pages (model pages: ADMIN_MODELS below) ----
    "admin/": {"GET": "302 302 302 302 302 200 302"},
    "admin/login/": {"GET": "200 200 200 200 200 302 200"},
    "admin/logout/": {"GET": "302 302 302 302 302 405 302"},  # POST only, once past the admin's gate
    "admin/password_change/": {"GET": "302 302 302 302 302 200 302"},
    "admin/password_change/done/": {"GET": "302 302 302 302 302 200 302"},
    "admin/autocomplete/": {"GET": "302 302 302 302 302 403 302"},  # no model named: refused
    "admin/jsi18n/": {"GET": "302 302 302 302 302 200 302"},
    "admin/r/<path:content_type_id>/<path:object_id>/": {"GET": "302 302 302 302 302 404 302"},
    r"admin/^(?P<app_label>auth|authtoken|aegis_base|evidence|preflight|promote)/$": {
        "GET": "302 302 302 302 302 200 302"
    },
    r"admin/(?P<url>.*)$": {"GET": "302 302 302 302 302 404 302"},
    # what the long-lived workers hold warm: read-only, staff only
    "admin/preflight/preflightrun/warm-twins/": {"GET": "302 302 302 302 302 200 302"},
}

# Every model in the admin and what staff may do there: "edit" (add, change, delete) or "read"
# (the records, ledger, decisions: view only); "no row": the world below makes none, so an object's
# page sends staff back to the admin index (302). Non-staff get the admin's sign-in page (302).
ADMIN_MODELS = {
    "auth/group": "edit",
    "auth/user": "edit",
    "authtoken/tokenproxy": "edit",
    "aegis_base/auditentry": "read",
    "evidence/bundle": "read",
    "evidence/ledgerentry": "read",
    "evidence/checkpoint": "read",
    "evidence/cosignature": "read, no row",
    "preflight/lab": "edit",
    "preflight/changerequest": "read",
    "preflight/preflightrun": "read",
    "promote/approval": "read",
    "promote/signedapproval": "read",
    "promote/approvalsigningkey": "read",
    "promote/usedapprovaltoken": "read, no row",
    "promote/promotionrecord": "read",
}
# staff's status per admin view of a model with a row (no row: the admin redirects to its index)
ADMIN_VIEWS = {
    "edit": {"": 200, "add/": 200, "change/": 200, "delete/": 200, "history/": 200, "object": 302},
    "read": {"": 200, "add/": 403, "change/": 200, "delete/": 403, "history/": 200, "object": 302},
    "read, no row": {"": 200, "add/": 403, "change/": 302, "delete/": 403, "history/": 302, "object": 302},
}
ADMIN_EXTRA = {  # per-object pages some admins add (guardian's object permissions, a user's password)
    "permissions/": 200, "permissions/user-manage/<user_id>/": 200, "permissions/group-manage/<group_id>/": 200,
    "password/": 200,
}


def _routes(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _routes(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)


def all_routes() -> list[str]:
    return list(dict.fromkeys(_routes(get_resolver().url_patterns)))


def _admin_model(route: str) -> tuple[str, str] | None:
    """("app/model", rest of the route) for a model's admin page, else None."""
    m = re.match(r"admin/([a-z_]+)/([a-z_]+)/(.*)$", route)
    if m and f"{m[1]}/{m[2]}" in ADMIN_MODELS or (m and apps.all_models.get(m[1], {}).get(m[2])):
        return f"{m[1]}/{m[2]}", m[3]
    return None


def admin_expected(route: str) -> dict[str, str] | None:
    found = _admin_model(route)
    if found is None:
        return None
    model, rest = found
    if model not in ADMIN_MODELS:
        return None
    views = ADMIN_VIEWS[ADMIN_MODELS[model]]
    rest = re.sub(r"<path:object_id>/|<object_pk>/|<id>/", "", rest, count=1)
    if rest in views:
        staff = views[rest]
    elif rest == "":  # the bare object address
        staff = views["object"]
    elif rest in ADMIN_EXTRA:
        staff = ADMIN_EXTRA[rest]
    else:
        return None
    if re.match(r"admin/[a-z_]+/[a-z_]+/<path:object_id>/$", route):
        staff = views["object"]
    return {"GET": f"302 302 302 302 302 {staff} 302"}


def expected_for(route: str) -> dict[str, str] | None:
    return EXPECTED.get(route) or admin_expected(route)


# ---- the test ----


def test_every_url_has_an_expectation():
    missing = [r for r in all_routes() if expected_for(r) is None]
    assert not missing, "URLs without a row in the persona matrix (add one to EXPECTED):\n" + "\n".join(missing)
    stale = sorted(set(EXPECTED) - set(all_routes()))
    assert not stale, f"rows for URLs that no longer exist: {stale}"
    admin_models = {f"{m._meta.app_label}/{m._meta.model_name}" for m in admin.site._registry}
    assert admin_models == set(ADMIN_MODELS), "admin models and ADMIN_MODELS differ"


@pytest.fixture
def staff(roles):
    return get_user_model().objects.create_superuser(username="sam", password="sam-pw-12345")


@pytest.fixture
def world(operator, operator2, approver, auditor, outsider, staff, submit, settings, tmp_path):
    """One sealed run needing approval (olivia's), approved by alice, with a dry-run promotion."""
    run = submit(operator, NEEDS_APPROVAL)
    assert run.verdict == "needs_approval" and run.bundle_digest
    approval = approval_decide(run=run, approver=approver, decision="approve", comment="As intended.")
    bundle = Bundle.objects.get(run_id=run.run_id)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("devices:\n  r3: {host: 127.0.0.1, port: 2203, username: aegis, key_file: /nonexistent}\n")
    settings.AEGIS_DEVICE_INVENTORY = str(inventory)
    client = APIClient()
    client.force_authenticate(operator)
    assert client.post(f"/api/bundles/{bundle.pk}/promote", {}, format="json").status_code == 200
    settings.AEGIS_DEVICE_INVENTORY = ""  # the matrix's promote POSTs stop at input checks
    users = {"owner": operator, "other_op": operator2, "approver": approver, "auditor": auditor,
             "staff": staff, "outsider": outsider}
    for user in users.values():
        Token.objects.get_or_create(user=user)
    ids = {
        "run_id": run.run_id,
        "bundle_id": str(bundle.pk),
        "record_id": str(PromotionRecord.objects.get().pk),
        "approval_id": str(SignedApproval.objects.get(approval=approval).approval_id),
        "user_id": str(operator.pk),
        "group_id": str(operator.groups.first().pk),
        "content_type_id": "999999",
        "object_id": "999999",
    }
    return users, ids


STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
STATIC_FILE = next(p for p in sorted(STATIC_DIR.rglob("*")) if p.is_file()).relative_to(STATIC_DIR)
REGEX_URLS = {
    r"api/^docs/assets/(?P<path>[\w.-]+)$": "/api/docs/assets/swagger-ui.css",
    r"^static/(?P<path>.*)$": f"/static/{STATIC_FILE}",
    r"admin/^(?P<app_label>auth|authtoken|aegis_base|evidence|preflight|promote)/$": "/admin/preflight/",
    r"admin/(?P<url>.*)$": "/admin/no-such-page/",
}


def url_of(route: str, ids: dict[str, str]) -> str:
    if route in REGEX_URLS:
        return REGEX_URLS[route]
    found = _admin_model(route)
    values = dict(ids)
    if found:
        app_label, model_name = found[0].split("/")
        row = apps.get_model(app_label, model_name)._default_manager.order_by("pk").first()
        values["object_id"] = values["object_pk"] = values["id"] = str(row.pk) if row else "0"
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m[1]], route)
    assert "(?P" not in url and "^" not in url, f"give {route!r} a URL in REGEX_URLS"
    return "/" + url


POST_BODIES = {  # bodies that fail validation, so "allowed" shows as 400 / a form with errors
    "api/preflight/run": {"lab": "triangle"},
    "api/runs/<str:run_id>/approvals": {"decision": "approve"},
    "api/bundles/<str:bundle_id>/promote": {"mode": "yolo"},
}


SIGN_OUT = {"accounts/logout/", "admin/logout/"}


def _clients(persona: str, users: dict) -> tuple[Client, Client]:
    """(pages, API) clients of a persona: pages with its session, the API with its token."""
    pages, api = Client(), Client()
    if persona != "anon":
        pages.force_login(users[persona])
        api.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.get(user=users[persona]).key}"
    return pages, api


def _ask(clients: tuple[Client, Client], method: str, url: str, route: str) -> int:
    pages, api = clients
    if url.startswith("/api/"):
        if method == "GET":
            return api.get(url).status_code
        return api.post(url, POST_BODIES.get(route, {}), content_type="application/json").status_code
    if method == "GET":
        return pages.get(url).status_code
    return pages.post(url, {}).status_code


def test_persona_url_matrix(world):
    users, ids = world
    clients = {persona: _clients(persona, users) for persona in PERSONAS}
    wrong, cells = [], 0
    for route in all_routes():
        for method, row in expected_for(route).items():
            want = [int(x) for x in row.split()]
            assert len(want) == len(PERSONAS), route
            url = url_of(route, ids)
            for persona, expected in zip(PERSONAS, want, strict=True):
                # signing out ends the session the other cells use: ask with a throwaway one
                ask_with = _clients(persona, users) if route in SIGN_OUT else clients[persona]
                got = _ask(ask_with, method, url, route)
                cells += 1
                if got != expected:
                    wrong.append(f"{persona:9} {method:4} {url} ({route}): got {got}, want {expected}")
    assert not wrong, f"{len(wrong)} of {cells} cells differ:\n" + "\n".join(wrong)
    assert cells >= len(all_routes()) * len(PERSONAS)
