"""The run page's result sections (verdict card, twin figures, diffs, ledger, data plane, rollback),
rendered once per sealed run in each web process.

Why this is safe to keep: a run's result is final once it is sealed and finished. The pipeline
stores it (`_run_record`), seals it (`_run_seal` sets `bundle_digest`, the sha256 of the bundle
that embeds the result) and only then marks the run finished (`_run_complete`); nothing writes
the result, verdict or error of a finished run afterwards (the admin shows runs read-only). So
these sections are a function of the run (pk and run id) and its bundle digest, the cache key. They are the
same for everyone who may see the run: the view checks access before it asks for them, and
nothing that depends on the viewer or changes later (decisions, the Decide button, downloads,
the promotion panel, the change's title and description) is in them. A run still going, failed
or unsealed is rendered on every request.

Why per process and not in Redis: the HTML never goes stale, so there is nothing to share or
invalidate between processes, a hit costs no network round trip, and a page does not depend on
Redis being up (docs/reliability.md). Bounded: the least recently shown runs leave first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from preflight import selectors
from preflight.models import PreflightRun

# Runs kept per process; a section pair is ~10-40 KB of HTML.
SIZE = 200

_cache: OrderedDict[tuple[int, str, str], dict[str, SafeString]] = OrderedDict()
_lock = threading.Lock()


def sections_final(run: PreflightRun) -> bool:
    """Whether the run's result sections can no longer change (finished and sealed)."""
    return run.status == PreflightRun.STATUS_FINISHED and bool(run.bundle_digest)


def result_sections(run: PreflightRun) -> dict[str, SafeString]:
    """{"verdict": html, "result": html} for the run page. Assumes the caller may view the run.

    Reads `run.result` only when it renders (a run loaded with the result deferred costs one
    query then, none on a hit)."""
    key = (run.pk, run.run_id, run.bundle_digest) if sections_final(run) else None
    if key is not None:
        with _lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    sections = _render(run)
    if key is not None:
        with _lock:
            _cache[key] = sections
            while len(_cache) > SIZE:
                _cache.popitem(last=False)
    return sections


def cache_clear() -> None:
    with _lock:
        _cache.clear()


def _render(run: PreflightRun) -> dict[str, SafeString]:
    result: dict[str, Any] = run.result or {}
    context = {
        "run": run,
        "result": result,
        "chart": selectors.routes_chart(result),
        "blast": selectors.blast_radius(result),
        "diff_nodes": sorted(((result.get("diff") or {}).get("nodes") or {}).items()),
    }
    return {
        "verdict": render_to_string("preflight/_run_verdict.html", context),
        "result": render_to_string("preflight/_run_result.html", context),
    }
