"""Lend one running twin to several pipeline runs (scenario suites, benchmarks).

The pipeline always tears its twin down at the end of a run; a suite that runs many changes
on one lab spawns the twin once and lends it through `LentBackend`, whose twins ignore that
teardown. The lender tears the real twin down itself when the suite ends. Each run proves its
rollback (S2 == S0), so the next run starts from the same baseline.
"""

from __future__ import annotations

from typing import Any


class LentTwin:
    """A running twin lent to one run: every call goes to the twin, except teardown."""

    def __init__(self, twin: Any) -> None:
        self._twin = twin

    def __getattr__(self, name: str) -> Any:
        return getattr(self._twin, name)

    def teardown(self) -> None:
        pass  # the lender owns the twin and tears it down


class LentBackend:
    """A backend whose `spawn` hands out the one twin it was given (netns, real tier)."""

    name = "netns"
    tier = "real"

    def __init__(self, twin: Any) -> None:
        self.twin = twin

    def spawn(self, topology: Any, run_id: Any = None, progress: Any = None) -> LentTwin:
        return LentTwin(self.twin)
