"""Unknown ids are 404, never 500, for every role.

The persona x URL matrix that lived here is now tests/security/test_url_matrix.py: generated
from the URL resolver over every page, API endpoint and admin page, with more personas.
"""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


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
