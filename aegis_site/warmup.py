"""A web worker pays for its first page at start, not on a person's first click.

A freshly started worker's first request cost ~180 ms of CPU (docs/performance.md): Django
imports every view module on the first URL resolution, compiles each template (and loads its
tag libraries) the first time it renders it, and opens its first database connection. Done
here once per process, before the worker takes requests (`DjangoHTTP` calls it when it is
built, so in every gunicorn/uvicorn worker and in daphne's one process).

Nothing here writes: URLs are resolved, AEGIS's own templates are compiled into the cached
loader, a database connection is opened and closed (with the PostgreSQL pool it stays in the
pool), and what start-up built is frozen out of the garbage collector's full collections. A step that fails (the database not up yet) is skipped: serving must not depend on it.
"""

from __future__ import annotations

import gc
import logging
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


def warm_up() -> dict[str, float | int]:
    """Resolve URLs, compile templates, open a DB connection; returns what it did and its CPU seconds."""
    from django.db import connections
    from django.template import TemplateDoesNotExist, TemplateSyntaxError
    from django.template.loader import get_template
    from django.urls import get_resolver

    cpu0 = time.process_time()
    done: dict[str, float | int] = {"templates": 0, "database": 0}
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
    try:
        conn = connections["default"]
        conn.ensure_connection()
        conn.close()
        done["database"] = 1
    except Exception as exc:  # noqa: BLE001 - the database may come up after the web worker
        log.info("warm-up: no database connection yet: %s", exc)
    # What start-up built (modules, URL patterns, compiled templates) lives as long as the process:
    # collect once now and move it out of the collector's sight, so a full collection does not
    # walk it again inside a person's request (measured: ~25 ms in the first run page after the
    # templates were compiled).
    gc.collect()
    gc.freeze()
    done["cpu_s"] = round(time.process_time() - cpu0, 3)
    return done
