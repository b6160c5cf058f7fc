"""Record real answers of a twin agent over real FRR into twin/tests/fixtures/agent-v1/ (run as root).

    .venv/bin/python -m twin.tests.record_agent_v1

The contract test replays them to the client (test_agent_contract.py), so a change to the
agent's answers that the client no longer understands fails fast, without a twin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twin.netns import NetnsBackend
from twin.remote import AgentClient, RemoteBackend
from twin.tests.agent_helpers import TOKEN, live_agent
from twin.topology import load_lab

OUT = Path(__file__).with_name("fixtures") / "agent-v1"
TRIANGLE = Path(__file__).resolve().parents[2] / "labs" / "triangle"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    recorded: dict[str, Any] = {}
    original = AgentClient.call

    def call(self: AgentClient, method: str, path: str, definition: str, body: Any = None, **kw: Any) -> Any:
        doc = original(self, method, path, definition, body, **kw)
        name = definition.removesuffix("_response")
        if name != "renew" or name not in recorded:
            recorded.setdefault(name, {"definition": definition, "method": method, "request": body, "response": doc})
        return doc

    AgentClient.call = call  # type: ignore[method-assign]
    with live_agent(NetnsBackend(), budget_mb=4000) as agent:
        backend = RemoteBackend(agent.url, token=TOKEN, lease_s=3)
        backend.health()
        twin = backend.spawn(load_lab(TRIANGLE), "record")
        try:
            backend.status()
            assert twin.converge(60).converged
            twin.snapshot()
            twin.running_config("r3")
            twin.apply("r3", "ip prefix-list X seq 5 permit 10.9.0.0/16\nbogus line\n")
            twin.reload_config("r3", twin.running_config("r3"), test_only=True)
            twin.reach("r1", "10.255.0.3")
            twin.ping_pairs([("r1", "10.255.0.3"), ("r2", "10.255.0.1")])
            twin._op("renew", {}, "renew_response")
        finally:
            twin.teardown()
    for name, doc in recorded.items():
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(recorded)} answers into {OUT}")


if __name__ == "__main__":
    main()
