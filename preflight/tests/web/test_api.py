"""The REST API: submit -> 202, catch-up by seq, field errors, OpenAPI schema and self-hosted docs."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from preflight.models import PreflightRun
from preflight.tests.web.fixtures import SHIP_READY

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(operator, lab, django_capture_on_commit_callbacks):
    client = APIClient()
    client.force_authenticate(operator)
    return client


def test_submit_answers_202_with_the_run_id_and_the_run_can_be_followed(
    api, django_capture_on_commit_callbacks
):
    # given an operator's API client, when she posts a change
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(
            "/api/preflight/run",
            {
                "lab": "triangle",
                "title": "Static route on r3",
                "devices": SHIP_READY["devices"],
                "expect": SHIP_READY["expect"],
                "frameworks": ["nist-800-53r5"],
                "backend": "simulator",
            },
            format="json",
        )
    # then 202 with the run id and where to follow it
    assert answer.status_code == 202, answer.content
    run_id = answer.json()["run_id"]
    assert answer.json()["events_url"] == f"/api/runs/{run_id}/events"
    run = api.get(f"/api/runs/{run_id}").json()
    assert (run["status"], run["verdict"], run["sealed"], run["lab"]) == (
        "finished",
        "ship_ready",
        True,
        "triangle",
    )
    # and events after a seq are exactly the later ones
    events = api.get(f"/api/runs/{run_id}/events?after=5").json()
    assert [e["seq"] for e in events] == list(range(6, run["last_seq"] + 1))
    assert api.get(f"/api/runs/{run_id}/result").json()["verdict"] == "ship_ready"
    assert PreflightRun.objects.get(run_id=run_id).change.source == "api"


@pytest.mark.parametrize(
    "body, where, words",
    [
        ({"lab": "triangle"}, ("title",), "required"),
        (
            {"lab": "nolab", "title": "t", "devices": {"r3": "x\n"}},
            ("lab",),
            "Unknown lab 'nolab'; available:",
        ),
        (
            {"lab": "triangle", "title": "t", "devices": {"r3": "do show run\n"}},
            ("devices", "r3"),
            "`do` is not allowed",
        ),
        (
            {
                "lab": "triangle",
                "title": "t",
                "devices": {"r3": "ip route 10.9.0.0/24 Null0\n"},
                "expect": {"prefixes_added": {"r3": "10.9.0.1/24"}},
            },
            ("expect", "prefixes_added"),
            "not a prefix",
        ),
        ({"lab": "triangle", "title": "t", "devices": "not a dict"}, ("devices",), "dictionary"),
        (
            {
                "lab": "triangle",
                "title": "t",
                "devices": {"r3": "ip route 10.9.0.0/24 Null0\n"},
                "backend": "docker",
            },
            ("backend",),
            "not a valid choice",
        ),
        ({"lab": "triangle", "title": "t"}, ("non_field_errors",), "at least one device"),
        ({"lab": "triangle", "title": "t", "devices": {"r3": "ip route 10.9.0.0/24 Null0\n"}, "failures": "some"},
         ("failures",), "failures must be all, none, auto or a number"),
        # numbers are not config lines: refused, never coerced to "123"
        ({"lab": "triangle", "title": "t", "devices": {"r3": 123}}, ("devices", "r3"), "Must be a string"),
        ({"lab": "triangle", "title": 7, "devices": {"r3": "ip route 10.9.0.0/24 Null0\n"}}, ("title",),
         "not a number"),
    ],
)
def test_bad_input_is_400_with_field_errors_and_nothing_is_written(api, body, where, words):
    answer = api.post("/api/preflight/run", body, format="json")
    assert answer.status_code == 400
    node = answer.json()
    for key in where:
        node = node[key]
    assert words in " ".join(node if isinstance(node, list) else [str(node)])
    assert PreflightRun.objects.count() == 0


def test_malformed_json_and_bad_seq_are_400(api):
    assert (
        api.generic("POST", "/api/preflight/run", "{not json", content_type="application/json").status_code
        == 400
    )
    assert api.get("/api/runs/x/events?after=-1").status_code in (400, 404)


def test_bad_seq_is_400_with_the_reason(api, submit, operator):
    run = submit(operator, SHIP_READY)
    answer = api.get(f"/api/runs/{run.run_id}/events?after=abc")
    assert answer.status_code == 400 and "not a whole number from 0 to" in answer.json()["after"][0]


def test_token_auth_works_and_anonymous_is_told_to_authenticate(operator, lab):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=operator)
    anonymous = APIClient().get("/api/runs")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    assert APIClient(HTTP_AUTHORIZATION=f"Token {token.key}").get("/api/runs").status_code == 200


def test_the_openapi_schema_describes_the_api_and_the_docs_page_is_self_hosted(client):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/preflight/run",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/events",
        "/api/bundles",
        "/api/bundles/{bundle_id}/verify",
        "/api/runs/{run_id}/approvals",
    ):
        assert path in paths, path
    page = client.get("/api/docs/").content.decode()
    assert "/api/docs/assets/swagger-ui-bundle.js" in page
    assert "https://" not in page and "http://" not in page  # no CDN: this runs air-gapped
    asset = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and b"SwaggerUIBundle" in b"".join(asset.streaming_content)


def test_failures_none_runs_no_failure_scenario(api, django_capture_on_commit_callbacks):
    body = {"lab": "triangle", "title": "t", "devices": {"r3": "ip route 10.9.0.0/24 Null0\n"},
            "backend": "simulator", "failures": "none"}
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post("/api/preflight/run", body, format="json")
    assert answer.status_code == 202, answer.content
    run = PreflightRun.objects.get()
    assert run.options["failures"] == "none"
    run.refresh_from_db()
    assert run.result["resilience"]["scenarios"] == []
