"""The pipeline on a warm twin (twin/pool.py): the second run of a lab takes the twin the first
one left at its proven baseline, reaches the same verdict from the same baseline, and says so;
concurrent runs of one lab never share a twin; nothing is left once the pool closes.

One real twin for the sequence, plus one more for the concurrent pair (about a minute)."""

from __future__ import annotations

import threading

import pytest

from preflight.core.change import change_load
from preflight.core.pipeline import run_preflight
from twin.pool import TwinPool

from .conftest import LABS, real_twin_possible, twin_leftovers

pytestmark = [pytest.mark.twin, pytest.mark.slow,
              pytest.mark.skipif(real_twin_possible() is not None, reason=str(real_twin_possible()))]


def test_warm_run_same_verdict_same_baseline_then_nothing_left():
    from twin.topology import load_lab

    lab = LABS / "triangle"
    topology = load_lab(lab)
    change = change_load((lab / "changes" / "ship_ready.yml").read_text(), topology)
    pool = TwinPool(budget_mb=4096)
    prefixes = set()
    try:
        cold = run_preflight(lab, change, backend="netns", twin_pool=pool)
        warm = run_preflight(lab, change, backend="netns", twin_pool=pool)
        prefixes.add(cold["twin"]["facts"]["namespace_prefix"])
        assert cold["twin"]["warm"] is False and warm["twin"]["warm"] is True
        assert cold["verdict"] == warm["verdict"] == "ship_ready", (cold["reasons"], warm["reasons"])
        assert warm["rollback"]["verified"] and warm["twin"]["pool"]["kept"]
        # Same twin, same baseline: the warm run's S0 is the state the cold run settled in.
        assert warm["twin"]["pool"]["twin_id"] == cold["twin"]["pool"]["twin_id"]
        assert warm["twin"]["baseline_digest"] == cold["twin"]["baseline_digest"]
        assert warm["snapshots"]["baseline"] == cold["snapshots"]["baseline"]
        assert warm["diff"]["nodes"] == cold["diff"]["nodes"]
        assert warm["timings"]["converge_baseline"] == 0.0

        # Two runs at once on a pool holding one twin: one warm, one on a twin of its own.
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            run_preflight(lab, change, backend="netns", twin_pool=pool))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r["twin"]["warm"] for r in results) == [False, True]
        assert len({r["twin"]["facts"]["twin_id"] for r in results}) == 2
        assert all(r["verdict"] == "ship_ready" for r in results), [r["reasons"] for r in results]
        prefixes |= {r["twin"]["facts"]["namespace_prefix"] for r in results}
    finally:
        pool.close()
    assert pool.holdings() == []
    assert [p for prefix in prefixes for p in twin_leftovers(prefix)] == []
