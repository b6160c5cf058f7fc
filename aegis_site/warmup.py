"""A web worker pays for its first page at start, not on a person's first click.

A freshly started worker's first request cost ~180 ms of CPU (docs/performance.md): Django
imports every view module on the first URL resolution, compiles each template (and loads its
tag libraries) the first time it renders it, and opens its first database connection. Done
here once per process, before the worker takes requests (`DjangoHTTP` calls it when it is
built, so in every gunicorn/uvicorn worker and in daphne's one process; with gunicorn's
`--preload` that would be the master, before it forks: `serve` does not preload).

Nothing here writes: URLs are resolved, AEGIS's own templates are compiled into the cached
loader, a database connection is opened and closed in a thread of its own (with the PostgreSQL
pool it stays in the pool; a database that is not up yet delays nothing), and what start-up
built is frozen out of the garbage collector's full collections. A step that fails is skipped
and logged: serving must not depend on it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Apps whose templates are rendered on AEGIS's pages (Django's admin is left to its first use).
_TEMPLATE_APPS = ("aegis_base", "compliance", "evidence", "preflight", "promote")


def _template_names() -> list[str]:
    from django.apps import apps
    from django.conf import settings

    roots = [Path(d) for t in settings.TEMPLATES for d in t.get("DIRS", [])]
    roots += [Path(apps.get_app_config(a).path) / "templates" for a in _TEMPLATE_APPS if apps.is_installed(a)]
    names: set[str] = set()
    for root in roots:
        if root.is_dir():
            names.update(p.relative_to(root).as_posix() for p in root.rglob("*.html"))
    return sorted(names)


def warm_up(freeze: bool = True) -> dict[str, float | int]:
    """Resolve URLs, compile templates, open a DB connection (in the background) and, with
    `freeze`, freeze what start-up built out of the GC; returns what it did and its CPU seconds."""
    from django.template import TemplateDoesNotExist, TemplateSyntaxError
    from django.template.loader import get_template
    from django.urls import get_resolver

    cpu0 = time.process_time()
    done: dict[str, float | int] = {"templates": 0}
    try:
        resolver = get_resolver()
        resolver.reverse_dict  # noqa: B018 - populating it imports every view module
        done["urls"] = 1
    except Exception as exc:  # noqa: BLE001 - the first request will say what is wrong, with a page
        log.warning("warm-up: URLs not resolved: %s", exc)
    for name in _template_names():
        try:
            get_template(name)
            done["templates"] += 1
        except (TemplateDoesNotExist, TemplateSyntaxError) as exc:
            log.warning("warm-up: template %s not compiled: %s", name, exc)
    # The database in a thread of its own: one that is not up yet (the connection pool waits up to
    # its timeout, 30 s) must not hold up the worker's start, nor its first requests.
    threading.Thread(target=database_warm, name="aegis-warmup-db", daemon=True).start()
    if freeze:
        # What start-up built (modules, URL patterns, compiled templates) lives as long as the
        # process: collect once now and move it out of the collector's sight, so a full collection
        # does not walk it again inside a person's request (measured: ~25 ms in the first run page
        # after the templates were compiled).
        gc.collect()
        gc.freeze()
    done["cpu_s"] = round(time.process_time() - cpu0, 3)
    return done


def database_warm() -> bool:
    """Open this thread's database connection (with the PostgreSQL pool: the pool) and close it."""
    from django.db import connections

    try:
        conn = connections["default"]
        conn.ensure_connection()
        conn.close()
        return True
    except Exception as exc:  # noqa: BLE001 - the database may come up after the web worker
        log.info("warm-up: no database connection yet: %s", exc)
        return False
