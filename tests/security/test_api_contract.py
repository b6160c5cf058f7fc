"""The API keeps the contract its OpenAPI document states, checked by schemathesis.

Given a live server on the test database with one sealed run that needs approval (simulator
backend), when schemathesis runs every phase (examples, coverage, fuzzing, stateful) with every
check against `/api/schema/`, once per persona (operator, approver, auditor, staff, anonymous),
then it finds 0 failures. The examples per operation are bounded (SCHEMATHESIS_MAX_EXAMPLES) and
the seed fixed, so the run is the same on every machine and stays within a few minutes of CI.

`POST /api/preflight/run` would start a run on the site's twin backend (netns: a real FRR twin per
accepted body), so the generic run leaves it out; `test_submit_examples_on_the_simulator` gives it
its own examples on the simulator backend, each response checked against the document by
schemathesis's own checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from rest_framework.authtoken.models import Token

from aegis_site.wsgi import application
from preflight.tests.web.fixtures import NEEDS_APPROVAL, SHIP_READY

ST = Path(sys.executable).with_name("st")
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "8"))
SEED = 17
TWIN_SPAWNING = "/api/preflight/run"
PERSONAS = ["operator", "approver", "auditor", "staff", "anonymous"]


@pytest.fixture
def staff(roles):
    """The site's administrator: Django staff and superuser (the `admin` row of docs/web.md's roles)."""
    return get_user_model().objects.create_superuser(username="sam", password="sam-pw-12345")


@pytest.fixture
def contract_data(operator, approver, submit):
    """A sealed run awaiting a decision and a finished one, so ids in the stateful phase resolve."""
    waiting = submit(operator, NEEDS_APPROVAL)
    shipped = submit(operator, SHIP_READY)
    assert waiting.bundle_digest and shipped.bundle_digest, "the contract run needs sealed bundles"
    return waiting, shipped


def _schemathesis_command(live_server, report: Path, token: str | None) -> list[str]:
    cmd = [
        str(ST), "run", f"{live_server.url}/api/schema/",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--exclude-path", TWIN_SPAWNING,
        "--report", "json", "--report-json-path", str(report),
        "--request-timeout", "60",
    ]
    if token:
        cmd += ["--header", f"Authorization: Token {token}"]
    return cmd


def test_schemathesis_finds_no_failure(request, live_server, transactional_db, contract_data, settings, tmp_path):
    # Schemathesis's ignored_auth check sends bad tokens on purpose; the sign-in limit would lock the
    # test client's address and answer 429 to the rest of the run (documented, but it tests nothing).
    settings.AEGIS_LOGIN_FAILURES_MAX = 0
    # One schemathesis process per persona, all at once against the one live server: the server
    # spends most of a request waiting on PostgreSQL, so they overlap (CI time), and each persona's
    # findings are its own report.
    runs = {}
    for persona in PERSONAS:
        token = None if persona == "anonymous" else Token.objects.create(user=request.getfixturevalue(persona)).key
        folder = tmp_path / persona
        folder.mkdir()
        out = (folder / "stdout.txt").open("w")
        cmd = _schemathesis_command(live_server, folder / "report.json", token)
        runs[persona] = (subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=folder), folder, out)
    problems, summary = [], {}
    for persona, (proc, folder, out) in runs.items():
        try:
            code = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        out.close()
        report = folder / "report.json"
        doc = json.loads(report.read_text()) if report.exists() else {}
        ops = (doc.get("operations") or {})
        phases = {name: p["status"] for name, p in (doc.get("phases") or {}).items()}
        summary[persona] = (doc.get("test_cases"), phases)
        # Every operation but the twin-spawning one was tested, in every phase, and nothing failed.
        if (
            code != 0
            or not ops
            or ops.get("selected") != ops.get("tested")
            or ops.get("tested", 0) < 16
            or set(phases.values()) != {"success"}
            or (doc.get("test_cases") or {}).get("with_failures")
        ):
            problems.append(f"{persona}: exit {code}, operations {ops}, phases {phases}\n"
                            + (folder / "stdout.txt").read_text()[-8000:])
    for persona, (cases, phases) in summary.items():
        print(f"schemathesis {persona}: {json.dumps(cases)} {json.dumps(phases)}")
    assert not problems, "\n\n".join(problems)
    assert all(cases and cases["generated"] > 100 for cases, _ in summary.values()), summary


# ---- the twin-spawning operation, on the simulator backend ----

SUBMIT_CASES = [
    # (what, body, expected status)
    ("a change that ships", {"lab": "triangle", "title": "Null-route", "backend": "simulator", **SHIP_READY}, 202),
    ("lines given as a number", {"lab": "triangle", "title": "t", "backend": "simulator", "devices": {"r3": 123}}, 400),
    ("title as a number", {"lab": "triangle", "title": 7, "backend": "simulator", "devices": {"r3": "ip route 10.42.0.0/24 Null0\n"}}, 400),
    ("a list where the lines go", {"lab": "triangle", "title": "t", "backend": "simulator", "devices": {"r3": ["ip route"]}}, 400),
    ("unknown lab", {"lab": "nowhere", "title": "t", "backend": "simulator", **SHIP_READY}, 400),
    ("unknown device", {"lab": "triangle", "title": "t", "backend": "simulator", "devices": {"r9": "hostname x\n"}}, 400),
    ("nothing to run", {"lab": "triangle", "title": "t", "backend": "simulator"}, 400),
    ("a line that leaves config mode", {"lab": "triangle", "title": "t", "backend": "simulator", "devices": {"r3": "end\n"}}, 400),
    ("twin backend not offered", {"lab": "triangle", "title": "t", "backend": "docker", **SHIP_READY}, 400),
    ("frameworks not a list", {"lab": "triangle", "title": "t", "backend": "simulator", "frameworks": "nist", **SHIP_READY}, 400),
]
# Every text field of the body refuses a number (DRF's CharField would turn 123 into "123").
_BASE = {"lab": "triangle", "title": "t", "backend": "simulator", **SHIP_READY}
SUBMIT_CASES += [
    (f"{name} as a number", {**_BASE, **patch}, 400)
    for name, patch in [
        ("lab", {"lab": 123}),
        ("description", {"description": 5}),
        ("intent", {"devices": {}, "intent": 5}),
        ("desired config", {"devices": {}, "desired": {"r3": 1}}),
        ("a framework", {"frameworks": [1]}),
        ("failures", {"failures": 2}),
        ("an expected prefix", {"expect": {"prefixes_added": {"r3": [123]}}}),
        ("expect", {"expect": 5}),
    ]
]


@pytest.fixture(scope="module")
def _loaded_schema():
    """The document /api/schema/ serves, made once; schemathesis calls the WSGI app in this process."""
    document = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    schema = schemathesis.openapi.from_dict(document)
    schema.app = application
    return schema


@pytest.fixture
def api_schema(db, _loaded_schema):
    """Django closes the database connection at the end of each request unless it is its own test
    client; here that would close the test's transaction, so the hooks are off as the client does.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield _loaded_schema
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize("what,body,want", SUBMIT_CASES, ids=[c[0] for c in SUBMIT_CASES])
def test_submit_examples_on_the_simulator(api_schema, operator, lab, django_capture_on_commit_callbacks, what, body,
                                          want):
    token = Token.objects.create(user=operator).key
    operation = api_schema[TWIN_SPAWNING]["POST"]
    case = operation.Case(body=body, headers={"Authorization": f"Token {token}"}, media_type="application/json")
    with django_capture_on_commit_callbacks(execute=True):
        response = case.call()
    assert response.status_code == want, (what, response.status_code, response.text[:500])
    # The response (status, content type, body) is what the document says for this operation.
    case.validate_response(response)


@pytest.mark.parametrize("persona", ["approver", "auditor", "staff", "anonymous"])
def test_submit_refusals_are_documented(request, api_schema, lab, persona):
    """Personas that may not submit get the documented refusal, before anything runs."""
    headers = {}
    if persona != "anonymous":
        headers["Authorization"] = f"Token {Token.objects.create(user=request.getfixturevalue(persona)).key}"
    body = {"lab": "nowhere", "title": "t", "backend": "simulator", **SHIP_READY}
    case = api_schema[TWIN_SPAWNING]["POST"].Case(body=body, headers=headers, media_type="application/json")
    response = case.call()
    want = {"approver": 403, "auditor": 403, "staff": 400, "anonymous": 401}[persona]
    assert response.status_code == want, response.text[:300]
    case.validate_response(response)
