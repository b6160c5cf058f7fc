"""A web worker warms up when its HTTP application is built (aegis_site/warmup.py).

benchmarks/web_first_request.py measures what it saves (docs/performance.md)."""

from __future__ import annotations

import gc

import pytest
from django.template import engines

from aegis_site.asgi_http import DjangoHTTP
from aegis_site.warmup import _template_names, database_warm, warm_up


def cached_loader():
    loader = engines["django"].engine.template_loaders[0]
    assert hasattr(loader, "get_template_cache"), "the cached template loader is in use"
    return loader


def test_building_the_http_app_compiles_every_aegis_template_and_resolves_urls():
    cached_loader().reset()
    app = DjangoHTTP()
    names = _template_names()
    assert {"base.html", "preflight/run.html", "promote/_promotions.html"} <= set(names)
    assert app.warmed["templates"] == len(names) and app.warmed["urls"] == 1
    assert set(names) <= set(cached_loader().get_template_cache)


def test_only_a_worker_freezes_its_start_up_objects():
    gc.unfreeze()
    warm_up(freeze=False)
    assert gc.get_freeze_count() == 0
    warm_up(freeze=True)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


@pytest.mark.django_db
def test_the_database_step_opens_and_closes_a_connection():
    assert database_warm() is True


def test_no_database_yet_is_no_reason_not_to_serve():
    # Outside a django_db test the database refuses connections, as one that is not up yet does.
    assert database_warm() is False
    assert warm_up(freeze=False)["templates"] > 0


def test_a_worker_built_without_warm_up_compiles_nothing_at_start():
    cached_loader().reset()
    app = DjangoHTTP(warm=False)
    assert app.warmed is None and not cached_loader().get_template_cache
