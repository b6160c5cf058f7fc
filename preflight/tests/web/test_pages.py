"""The operator's form through Django's test client: success, inline errors, home redirects."""

from __future__ import annotations

import pytest
from django.test import Client

from preflight.models import PreflightRun

pytestmark = pytest.mark.django_db


def _form(**overrides):
    data = {
        "lab_name": "triangle",
        "title": "Null-route on r3",
        "description": "",
        "backend": "simulator",
        "device_r1": "",
        "device_r2": "",
        "device_r3": "ip route 10.42.0.0/24 Null0\n",
        "prefixes_added": "r3 10.42.0.0/24",
        "prefixes_removed": "",
        "sessions_removed": "",
        "frameworks": ["nist-800-53r5"],
    }
    data.update(overrides)
    return data


@pytest.fixture
def operator_client(operator, lab):
    client = Client()
    client.force_login(operator)
    return client


def test_a_valid_form_starts_a_run_and_shows_its_page(
    operator_client, lab, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = operator_client.post("/preflight/", {**_form(), "lab": lab.pk})
    run = PreflightRun.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/preflight/runs/{run.run_id}/"
    assert (run.change.source, run.change.expect, run.verdict) == (
        "form",
        {"prefixes_added": {"r3": ["10.42.0.0/24"]}},
        "ship_ready",
    )
    page = operator_client.get(answer["Location"]).content.decode()
    assert "Ship ready" in page and "10.42.0.0/24 static" in page, page[page.find("What changed") :][:600]


@pytest.mark.parametrize(
    "overrides, field_id, words",
    [
        ({"prefixes_added": "r3"}, "id_prefixes_added", "write NODE and one value"),
        ({"prefixes_added": "r3 10.42.0.1/24"}, "id_prefixes_added", "is not a prefix"),
        ({"device_r3": "router bgp 65003\n end\n"}, "id_device_r3", "line 2"),
        ({"title": ""}, "id_title", "This field is required"),
    ],
)
def test_errors_are_shown_next_to_their_field_and_nothing_is_written(
    operator_client, lab, overrides, field_id, words
):
    answer = operator_client.post("/preflight/", {**_form(**overrides), "lab": lab.pk})
    page = answer.content.decode()
    assert answer.status_code == 400 and words in page
    # the error list follows the field it is about, and what was typed is kept
    assert page.index(f'id="{field_id}"') < page.index(words)
    assert PreflightRun.objects.count() == 0


def test_home_sends_each_role_to_its_page(operator, approver, auditor, outsider):
    expected = {operator: "/preflight/", approver: "/promote/queue/", auditor: "/evidence/bundles/"}
    for user, where in expected.items():
        client = Client()
        client.force_login(user)
        assert client.get("/")["Location"] == where
    client = Client()
    client.force_login(outsider)
    answer = client.get("/")
    assert answer.status_code == 403 and "No role yet" in answer.content.decode()
    assert Client().get("/")["Location"].startswith("/accounts/login/")


def test_the_run_page_shows_the_per_line_ledger_and_the_inferred_intent(
    operator_client, lab, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = operator_client.post("/preflight/", {**_form(prefixes_added=""), "lab": lab.pk})
    run = PreflightRun.objects.get()
    # The simulator has no running config; give the stored result the ledger a real twin writes
    # (FRR 8.4.4: r3 runs no ospfd, so the cost line had no effect).
    result = dict(run.result)
    result["apply"] = {**result["apply"], "ledger": {
        "available": True, "summary": {"applied": 1, "rejected": 0, "not_applied": 1, "reinterpreted": 0},
        "devices": {"r3": {"lines": [
            {"node": "r3", "line_no": 1, "line": "interface eth1", "status": "applied", "frr_said": ""},
            {"node": "r3", "line_no": 2, "line": "ip ospf cost 10", "status": "not_applied", "frr_said": ""}],
            "unrequested": []}}}}
    PreflightRun.objects.filter(pk=run.pk).update(result=result)
    page = operator_client.get(answer["Location"]).content.decode()
    assert "Per-line ledger" in page and "ip ospf cost 10" in page and "not applied" in page
    assert "inferred from the lines" in page and "announces 10.42.0.0/24" in page


def test_the_run_page_shows_the_fib_diff_and_the_failure_scenarios(
    operator_client, lab, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = operator_client.post("/preflight/", {**_form(), "lab": lab.pk})
    run = PreflightRun.objects.get()
    assert run.result["resilience"]["scenarios"], "the simulator runs the derived link failures too"
    page = operator_client.get(answer["Location"]).content.decode()
    assert "Forwarding tables: what changed for traffic" in page
    assert f"{run.result['dataplane']['pairs_checked']} pairs followed" in page
    assert "Failure scenarios, before and after the change" in page
    for sc in run.result["resilience"]["scenarios"]:
        assert sc["name"] in page



def test_the_form_refuses_a_bad_failures_value_next_to_the_field(operator_client, lab):
    answer = operator_client.post("/preflight/", {**_form(failures="lots"), "lab": lab.pk})
    page = answer.content.decode()
    assert answer.status_code == 400 and "failures must be all, none, auto or a number" in page
    assert page.index('id="id_failures"') < page.index("failures must be")
    assert PreflightRun.objects.count() == 0
