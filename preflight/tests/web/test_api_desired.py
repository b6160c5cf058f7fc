"""The API takes desired state: `desired: {node: full config}` -> frr-reload's delta runs, sealed as change.desired."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from preflight.models import PreflightRun
from preflight.tests.web.fixtures import REPO

pytestmark = pytest.mark.django_db
R3 = (REPO / "labs" / "triangle" / "r3" / "frr.conf").read_text()


@pytest.fixture
def api(operator, lab):
    client = APIClient()
    client.force_authenticate(operator)
    return client


def test_desired_config_runs_its_delta(api, django_capture_on_commit_callbacks):
    desired = R3.replace("ip route 192.0.2.0/24 Null0\n", "ip route 192.0.2.0/24 Null0\nip route 198.51.100.0/24 Null0\n")
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post("/api/preflight/run", {"lab": "triangle", "title": "r3 desired", "desired": {"r3": desired},
                                                  "backend": "simulator"}, format="json")
    assert answer.status_code == 202, answer.content
    run = PreflightRun.objects.get(run_id=answer.json()["run_id"])
    assert run.change.devices == {"r3": "ip route 198.51.100.0/24 Null0\n"}
    result = api.get(f"/api/runs/{run.run_id}/result").json()
    assert result["change"]["desired"]["nodes"]["r3"]["add"] == ["ip route 198.51.100.0/24 Null0"]
    assert result["verdict"] in ("ship_ready", "needs_approval")


@pytest.mark.parametrize("desired, where, words", [
    ({"r3": R3 + "log file /tmp/x\n"}, ("desired", "r3"), "`log file` is not allowed"),
    ({"r3": R3}, ("non_field_errors",), "equal the lab's baseline"),
    ({"r3": 5}, ("desired",), "text"),
])
def test_desired_refusals_name_the_router_and_write_nothing(api, desired, where, words):
    answer = api.post("/api/preflight/run", {"lab": "triangle", "title": "t", "desired": desired}, format="json")
    assert answer.status_code == 400
    body = answer.json()
    for key in where:
        body = body[key]
    assert words in str(body)
    assert not PreflightRun.objects.exists()


def test_lines_and_desired_together_are_refused(api):
    answer = api.post("/api/preflight/run", {"lab": "triangle", "title": "t", "devices": {"r3": "ip route 10.9.0.0/24 Null0"},
                                             "desired": {"r3": R3}}, format="json")
    assert answer.status_code == 400 and "not devices and desired configs" in str(answer.json())
