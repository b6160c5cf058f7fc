"""The twin: real FRR networks in Linux namespaces (`netns`), the seeded `simulator`, or a
remote twin agent over HTTP (`http`, twin/remote.py; the agent is twin/agent.py).

Django-free. `get_backend(name)` imports a backend only when asked for, so a web process that
never spawns a twin does not need root, FRR or the simulator's dependencies.
"""

from __future__ import annotations

from typing import Any

from .base import Backend, TwinError

BACKENDS = ("netns", "simulator", "http")


def get_backend(name: str, **options: Any) -> Backend:
    """The backend called `name`; raises TwinError saying what to fix when it cannot run here."""
    if name == "netns":
        from .netns import NetnsBackend

        return NetnsBackend(**options)
    if name == "simulator":
        try:
            from .simulator import SimulatorBackend
        except ImportError as exc:
            raise TwinError(f"the simulator backend is not available: {exc}") from exc
        return SimulatorBackend(**options)
    if name == "http":
        # url= (one agent) or agents= (several: the lab is placed across them, twin/split.py),
        # token_file= (or token=), allow=, lease_s=: see RemoteBackend.
        from .remote import RemoteBackend

        agents = list(options.pop("agents", None) or [])
        if options.get("url") or len(agents) <= 1:
            if agents and not options.get("url"):
                options["url"] = agents[0]
            return RemoteBackend(**options)
        from .split import SplitBackend

        return SplitBackend([RemoteBackend(url=url, **options) for url in agents])
    raise TwinError(f"unknown twin backend {name!r} (choose one of: {', '.join(BACKENDS)})")
