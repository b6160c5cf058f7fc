"""Reads inside a settle window are kept only if the tables at the window's end are the same.

`_settle_reading` is the pipeline's rule (docs/twin.md, "Reads inside the window"): reads a twin
took inside its window are believed only when the routers' tables, as the sweep that closed the
window read them (`ConvergeResult.tables`), equal what the reads saw; otherwise they are read
again after the window. Fake twins here: the rule, not FRR (twin/tests/test_netns_triangle.py
checks that the netns twin's deciding sweep really reads the tables).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from preflight.core.pipeline import _nodes_unchanged, _settle_reading
from twin.base import ConvergeResult

A = {"r1": {"routes": {"10.0.0.0/24": {}}}}
B = {"r1": {"routes": {"10.0.0.0/24": {}, "10.9.0.0/24": {}}}}


def done(value: Any) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


class InsideTwin:
    """Converges with the reads held, its deciding sweep having read `tables` (None: not read)."""

    def __init__(self, inside: dict, tables: dict | None, now: dict) -> None:
        self.inside, self.tables, self.now = inside, tables, now
        self.snapshots = 0

    def converge(self, timeout: float, stable_for: float = 3.0, alongside: Any = None) -> ConvergeResult:
        return ConvergeResult(True, 1.0, alongside=done(self.inside) if alongside else None, tables=self.tables)

    def snapshot(self, reachability: bool = True) -> dict:
        self.snapshots += 1
        return {"nodes": self.now}


class AfterTwin:
    """A backend without `alongside` (simulator, http): everything is read after the window."""

    def converge(self, timeout: float, stable_for: float = 3.0) -> ConvergeResult:
        return ConvergeResult(True, 1.0)


def settle(twin: Any, read_after: bool = True) -> tuple[Any, Any, bool]:
    def reads() -> dict:
        return {"snap": {"nodes": twin.now if hasattr(twin, "now") else A}, "after": True}

    return _settle_reading(twin, (30.0, 1.0), reads, read_after=read_after,
                           recheck=lambda v, cr: _nodes_unchanged(twin, v["snap"], cr))


def test_reads_are_kept_when_the_deciding_sweeps_tables_equal_them_and_nothing_is_read_again():
    twin = InsideTwin(inside={"snap": {"nodes": A}}, tables=A, now=A)
    cr, value, held = settle(twin)
    assert cr.converged and held
    assert value == {"snap": {"nodes": A}}  # the reads from inside, not a read after
    assert twin.snapshots == 0  # the comparison used the sweep's own tables


def test_reads_are_dropped_and_taken_again_when_a_table_moved_after_them():
    # A BGP best path or a RIB entry that moved no FIB: invisible to the window, seen in the tables.
    twin = InsideTwin(inside={"snap": {"nodes": A}}, tables=B, now=B)
    cr, value, held = settle(twin)
    assert not held
    assert value == {"snap": {"nodes": B}, "after": True}
    # The caller that reads for itself gets nothing to keep.
    assert settle(twin, read_after=False)[1:] == (None, False)


def test_without_the_sweeps_tables_the_routers_are_asked_again_after_the_window():
    twin = InsideTwin(inside={"snap": {"nodes": A}}, tables=None, now=A)
    assert settle(twin)[2] is True and twin.snapshots == 1
    moved = InsideTwin(inside={"snap": {"nodes": A}}, tables=None, now=B)
    assert settle(moved)[2] is False and moved.snapshots == 1


def test_a_twin_that_cannot_read_inside_its_window_is_read_after_it():
    cr, value, held = settle(AfterTwin())
    assert cr.converged and not held and value == {"snap": {"nodes": A}, "after": True}
