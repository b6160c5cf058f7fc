"""The run page renders a sealed run's result sections once per process (preflight/result_sections.py).

What must hold: a hit shows what a fresh render shows without reading the result document;
whatever changes after the seal (decisions, the Decide button, the promotion panel) is never
served from it; a run that is not final yet is rendered on every request; and access is
checked before the cache is consulted.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from preflight import result_sections
from preflight.models import PreflightRun
from preflight.tests.web.fixtures import NEEDS_APPROVAL
from promote.services import approval_decide

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    result_sections.cache_clear()
    yield
    result_sections.cache_clear()


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _page(client: Client, run: PreflightRun) -> str:
    answer = client.get(f"/preflight/runs/{run.run_id}/")
    assert answer.status_code == 200
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", answer.content.decode())


def _reads_the_result(client: Client, run: PreflightRun) -> bool:
    with CaptureQueriesContext(connection) as ctx:
        _page(client, run)
    return any('"preflight_preflightrun"."result"' in q["sql"] for q in ctx.captured_queries)


def test_a_sealed_run_is_rendered_once_and_shown_the_same(operator, submit):
    run = submit(operator, NEEDS_APPROVAL)
    assert run.status == "finished" and run.bundle_digest
    client = _client(operator)
    assert _reads_the_result(client, run), "the first request renders the sections from the result"
    fresh = _page(client, run)
    assert not _reads_the_result(client, run), "later requests reuse them without loading the result"
    result_sections.cache_clear()
    assert _page(client, run) == fresh
    assert "Blast radius" in fresh and "Needs approval" in fresh and run.result["reasons"][0]["code"] in fresh


def test_a_decision_recorded_after_the_page_was_cached_shows_on_it(operator, approver, submit):
    run = submit(operator, NEEDS_APPROVAL)
    approver_client = _client(approver)
    before = _page(approver_client, run)
    assert "Waiting for an approver." in before and f"/promote/runs/{run.run_id}/" in before  # Decide
    approval_decide(run=run, approver=approver, decision="approve", comment="looks right to me")
    after = _page(approver_client, run)
    assert "Waiting for an approver." not in after and "looks right to me" in after
    assert f'href="/promote/runs/{run.run_id}/"' not in after, "no Decide button once she decided"
    assert 'badge approved">approved' in after


def test_a_run_is_rendered_on_every_request_until_it_is_sealed_and_finished(operator, submit):
    run = submit(operator, NEEDS_APPROVAL)
    final = {"verdict": run.verdict, "result": run.result, "bundle_digest": run.bundle_digest}
    client = _client(operator)
    rows = PreflightRun.objects.filter(pk=run.pk)
    # The pipeline's order (services/execution.py): running, result recorded, sealed, finished.
    rows.update(status="running", verdict="", result=None, bundle_digest="")
    assert "Running…" in _page(client, run)
    rows.update(verdict=final["verdict"], result=final["result"])
    assert "Running…" not in _page(client, run) and "Needs approval" in _page(client, run)
    rows.update(bundle_digest=final["bundle_digest"])
    assert not result_sections.sections_final(rows.get())
    assert _reads_the_result(client, run), "sealed but not finished: rendered again"
    rows.update(status="finished")
    assert result_sections.sections_final(rows.get())
    _page(client, run)
    assert not _reads_the_result(client, run)


def test_an_unsealed_run_is_rendered_on_every_request(operator, submit):
    run = submit(operator, NEEDS_APPROVAL)
    PreflightRun.objects.filter(pk=run.pk).update(bundle_digest="")
    client = _client(operator)
    _page(client, run)
    assert _reads_the_result(client, run)


def test_the_cache_never_lets_anyone_past_the_access_check(operator, operator2, outsider, submit):
    run = submit(operator, NEEDS_APPROVAL)
    _page(_client(operator), run)  # cached now
    for user in (operator2, outsider):
        assert _client(user).get(f"/preflight/runs/{run.run_id}/").status_code == 403
    assert Client().get(f"/preflight/runs/{run.run_id}/").status_code == 302  # to the sign-in page


def test_the_cache_is_bounded(operator, submit, monkeypatch):
    monkeypatch.setattr(result_sections, "SIZE", 1)
    first, second = submit(operator, NEEDS_APPROVAL), submit(operator, NEEDS_APPROVAL, title="second")
    client = _client(operator)
    _page(client, first)
    _page(client, second)
    assert _reads_the_result(client, first), "the least recently shown run left the cache"
