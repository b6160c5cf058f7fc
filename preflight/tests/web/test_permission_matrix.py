"""Persona x page/endpoint permission matrix on the real PostgreSQL.

One sealed run that needs approval, submitted by the operator; every persona asks for every
page and endpoint. Writes use bodies that fail validation, so an allowed persona gets 400 (it
got past authorization) and a refused one 403 (or 401/302 when anonymous): the table stays
independent of the order of requests. A wrong cell names itself in the failure.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from evidence.models import Bundle
from preflight.tests.web.fixtures import NEEDS_APPROVAL

pytestmark = pytest.mark.django_db

# (name, method, url template, body); {run} and {bundle} are filled in.
CELLS = [
    ("start page", "get", "/preflight/", None),
    ("run page", "get", "/preflight/runs/{run}/", None),
    ("run result download", "get", "/preflight/runs/{run}/result.json", None),
    ("run PDF download", "get", "/preflight/runs/{run}/report.pdf", None),
    ("approval queue", "get", "/promote/queue/", None),
    ("decision page", "get", "/promote/runs/{run}/", None),
    ("bundle browser", "get", "/evidence/bundles/", None),
    ("bundle page", "get", "/evidence/bundles/{bundle}/", None),
    ("bundle PDF", "get", "/evidence/bundles/{bundle}/report.pdf", None),
    ("api submit", "post", "/api/preflight/run", {"lab": "triangle"}),  # no title: 400 if allowed
    ("api runs", "get", "/api/runs", None),
    ("api run", "get", "/api/runs/{run}", None),
    ("api events", "get", "/api/runs/{run}/events?after=3", None),
    ("api result", "get", "/api/runs/{run}/result", None),
    ("api approvals", "get", "/api/runs/{run}/approvals", None),
    ("api decide", "post", "/api/runs/{run}/approvals", {"decision": "approve"}),  # no comment: 400
    ("api queue", "get", "/api/approvals/queue", None),
    ("api bundles", "get", "/api/bundles", None),
    ("api bundle", "get", "/api/bundles/{bundle}", None),
    ("api bundle json", "get", "/api/bundles/{bundle}/json", None),
    ("api bundle pdf", "get", "/api/bundles/{bundle}/pdf", None),
    ("api verify", "post", "/api/bundles/{bundle}/verify", {}),
]

L = 302  # pages send the anonymous to the sign-in page
EXPECTED = {
    #                     operator approver auditor outsider anonymous
    "start page": (200, 403, 403, 403, L),
    "run page": (200, 200, 403, 403, L),
    "run result download": (200, 200, 403, 403, L),
    "run PDF download": (200, 200, 403, 403, L),
    "approval queue": (403, 200, 403, 403, L),
    "decision page": (403, 200, 403, 403, L),
    "bundle browser": (403, 403, 200, 403, L),
    # One access model for evidence (object permission evidence.view_bundle): the approvers see the
    # bundle of a run awaiting their decision, as they see its run page and PDF.
    "bundle page": (200, 200, 200, 403, L),
    "bundle PDF": (200, 200, 200, 403, L),
    "api submit": (400, 403, 403, 403, 401),
    "api runs": (200, 200, 200, 200, 401),  # a list filtered to what each may see
    "api run": (200, 200, 403, 403, 401),
    "api events": (200, 200, 403, 403, 401),
    "api result": (200, 200, 403, 403, 401),
    "api approvals": (200, 200, 403, 403, 401),
    "api decide": (403, 400, 403, 403, 401),
    "api queue": (403, 200, 403, 403, 401),
    "api bundles": (200, 200, 200, 403, 401),  # filtered: operators their own, approvers those awaiting them
    "api bundle": (200, 200, 200, 403, 401),
    "api bundle json": (200, 200, 200, 403, 401),
    "api bundle pdf": (200, 200, 200, 403, 401),
    "api verify": (200, 200, 200, 403, 401),
}
PERSONAS = ["operator", "approver", "auditor", "outsider", "anonymous"]


@pytest.fixture
def sealed_run(operator, submit):
    run = submit(operator, NEEDS_APPROVAL)
    assert run.verdict == "needs_approval" and run.bundle_digest, (
        "the matrix needs a sealed run that needs approval"
    )
    return run


def _ask(client: Client, method: str, url: str, body, token: str | None):
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    if method == "get":
        return client.get(url, **headers)
    return client.post(url, body, content_type="application/json", **headers)


@pytest.mark.parametrize("persona", PERSONAS)
def test_permission_matrix(request, persona, sealed_run):
    bundle = Bundle.objects.get(run_id=sealed_run.run_id)
    column = PERSONAS.index(persona)
    client = Client(enforce_csrf_checks=False)
    token = None
    if persona != "anonymous":
        user = request.getfixturevalue(persona)
        client.force_login(user)  # pages use the session
        token = Token.objects.create(user=user).key  # the API is asked with a token, as a script would
    wrong = []
    for name, method, template, body in CELLS:
        url = template.format(run=sealed_run.run_id, bundle=bundle.pk)
        use_token = token if url.startswith("/api/") else None
        page_client = client if not use_token else Client()
        got = _ask(page_client, method, url, body, use_token).status_code
        want = EXPECTED[name][column]
        if got != want:
            wrong.append(f"{persona} {method.upper()} {url} ({name}): got {got}, want {want}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("persona", ["operator", "approver", "auditor"])
def test_unknown_ids_are_404_never_500(request, persona):
    user = request.getfixturevalue(persona)
    client = Client()
    client.force_login(user)
    urls = [
        "/api/runs/20990101-000000-ffffff",
        "/api/runs/nope/events",
        "/api/bundles/999999",
        "/api/bundles/not-a-number",
        "/preflight/runs/20990101-000000-ffffff/",
        "/evidence/bundles/999999/",
        "/no/such/page/",
    ]
    got = {url: client.get(url).status_code for url in urls}
    assert set(got.values()) == {404}, got
