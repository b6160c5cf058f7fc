"""The warm pool's memory bookkeeping: least recently used idle twins go first (fast).

The twins here are stand-ins that only count teardowns (`BookkeepingTwin_mock`): eviction is
bookkeeping over the pool's entries; the real-FRR pool is tested in test_pool.py."""

from __future__ import annotations

import time
from pathlib import Path

from twin.pool import TwinPool
from twin.topology import load_lab

TRIANGLE = load_lab(Path(__file__).resolve().parents[2] / "labs" / "triangle")
SNAP = {"nodes": {"r1": {}}}


class BookkeepingTwin_mock:  # noqa: N801 - says it is a stand-in
    def __init__(self) -> None:
        self.topology = TRIANGLE
        self.torn_down = 0

    def running_config(self, node: str) -> str:
        return f"hostname {node}\n"

    def teardown(self) -> None:
        self.torn_down += 1


def adopt(pool: TwinPool, mb: float) -> BookkeepingTwin_mock:
    twin = BookkeepingTwin_mock()
    assert pool.adopt(TRIANGLE, twin, SNAP, SNAP, min_memory_mb=mb)
    time.sleep(0.01)  # distinct last-used times
    return twin


def test_over_budget_the_least_recently_used_idle_twin_goes():
    pool = TwinPool(budget_mb=250)
    first, second = adopt(pool, 100), adopt(pool, 100)
    third = adopt(pool, 100)  # 300 > 250: the oldest idle one is torn down
    assert (first.torn_down, second.torn_down, third.torn_down) == (1, 0, 0)
    assert pool.memory_mb() == 200 and pool.idle_mb() == 200
    pool.close()


def test_evict_idle_frees_what_was_asked_oldest_first_and_stops_when_none_is_idle():
    pool = TwinPool(budget_mb=1000)
    a, b, c = adopt(pool, 100), adopt(pool, 100), adopt(pool, 100)
    assert pool.evict_idle(150) == 200  # two twins: the first alone freed too little
    assert (a.torn_down, b.torn_down, c.torn_down) == (1, 1, 0)
    assert pool.evict_idle(500) == 100 and c.torn_down == 1
    assert pool.evict_idle(10) == 0 and pool.memory_mb() == 0
    pool.close()
