"""The start form takes uploaded full configs per router, shows frr-reload's delta, then runs it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from preflight.models import PreflightRun
from preflight.tests.web.fixtures import REPO

pytestmark = pytest.mark.django_db
R3 = (REPO / "labs" / "triangle" / "r3" / "frr.conf").read_text()
DESIRED = R3.replace("ip route 192.0.2.0/24 Null0\n", "ip route 192.0.2.0/24 Null0\nip route 198.51.100.0/24 Null0\n")


def _post(client, **extra):
    data = {"lab_name": "triangle", "title": "r3 desired", "backend": "simulator", **extra}
    return client.post("/preflight/", data)


@pytest.fixture
def page(client, operator, lab):
    client.force_login(operator)
    data = {"lab": lab.pk}
    return client, data


def test_upload_shows_the_delta_first_and_runs_it_on_confirm(page, django_capture_on_commit_callbacks):
    client, data = page
    answer = _post(client, **data, desired_file_r3=SimpleUploadedFile("frr.conf", DESIRED.encode()))
    html = answer.content.decode()
    assert answer.status_code == 200 and 'id="desired-delta"' in html
    assert "lines to add:" in html and "ip route 198.51.100.0/24 Null0" in html
    assert not PreflightRun.objects.exists()  # nothing runs before the operator saw the delta
    with django_capture_on_commit_callbacks(execute=True):
        answer = _post(client, **data, action="run", desired_text_r3=DESIRED)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    run = PreflightRun.objects.get()
    assert run.change.devices == {"r3": "ip route 198.51.100.0/24 Null0\n"} and run.change.source == "form"
    assert run.change.desired["nodes"]["r3"]["add"] == ["ip route 198.51.100.0/24 Null0"]


def test_a_hostile_upload_is_refused_next_to_its_router(page):
    client, data = page
    answer = _post(client, **data, desired_file_r3=SimpleUploadedFile("frr.conf", (R3 + "do show run\n").encode()))
    assert answer.status_code == 400 and "`do` is not allowed" in answer.content.decode()
    assert not PreflightRun.objects.exists()


def test_lines_and_files_together_are_refused_before_any_preview(page):
    client, data = page
    answer = _post(client, **data, device_r3="ip route 10.9.0.0/24 Null0",
                   desired_file_r3=SimpleUploadedFile("frr.conf", DESIRED.encode()))
    assert answer.status_code == 400 and "not both" in answer.content.decode()
    assert 'id="desired-delta"' not in answer.content.decode()
