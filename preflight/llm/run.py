"""From an operator's intent to a result document: propose with the LLM, then verify like any change.

This is the glue the CLI (`preflight LAB --intent "…"`), the form and the API call. The
proposal is made and the pipeline run inside one egress scope, so the result's `egress`
record lists the LLM server contacted for this run. A proposal the model botched (not JSON,
unknown device, refused by the guards, server down) ends as a `blocked` result document with
the reason and the full LLM provenance, so it can be sealed like any other run.
"""

from __future__ import annotations

import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perimeter.egress import egress_record, egress_scope
from preflight.core.pipeline import AEGIS_VERSION, RESULT_FORMAT, lab_facts, run_id_new, run_preflight
from preflight.llm.config import LLMConfig
from preflight.llm.propose import Proposal, propose_change
from twin.base import Progress, Topology, no_progress
from twin.topology import load_lab


def preflight_intent(
    lab_dir: str | Path,
    intent: str,
    *,
    config: LLMConfig,
    topology: Topology | None = None,
    progress: Progress = no_progress,
    run_id: str | None = None,
    **run_kwargs: Any,
) -> dict[str, Any]:
    """Propose a change for `intent` and verify it on the twin; return the result document.

    Raises before anything runs: `IntentRejected`, `LLMConfigError`, `EgressRefused`, and the
    pipeline's own input errors (`TopologyError`, ...). `run_kwargs` go to `run_preflight`.
    """
    lab_dir = Path(lab_dir)
    if topology is None:
        topology = load_lab(lab_dir)
    run_id = run_id or run_id_new()
    with egress_scope():
        started_at = datetime.now(UTC)
        progress("propose", "started", "asking the LLM for a change", {})
        proposal = propose_change(intent, topology, config=config)
        if proposal.change is None:
            progress(
                "propose", "failed", proposal.error or "no usable proposal", {"code": proposal.error_code}
            )
            return proposal_blocked_result(proposal, topology, lab_dir, run_id=run_id, started_at=started_at)
        progress("propose", "ok", f"the LLM proposed changes on {', '.join(proposal.change['devices'])}", {})
        return run_preflight(
            lab_dir,
            proposal.change,
            topology=topology,
            progress=progress,
            run_id=run_id,
            llm=proposal.provenance,
            **run_kwargs,
        )


def proposal_blocked_result(
    proposal: Proposal, topology: Topology, lab_dir: Path, *, run_id: str, started_at: datetime
) -> dict[str, Any]:
    """The result document of a run whose LLM proposal was unusable: blocked, nothing spawned."""
    reason = proposal.reason() or {"code": "LLM_FAILED", "message": "LLM proposal unusable"}
    seconds = float(proposal.provenance.get("seconds") or 0.0)
    skipped = "the LLM gave no usable proposal"
    return {
        "format": RESULT_FORMAT,
        "run_id": run_id,
        "verdict": "blocked",
        "reasons": [reason],
        "risk": None,
        "change": {
            "title": "LLM proposal (unusable)",
            "description": f"Operator's intent: {proposal.provenance.get('intent', '')}",
            "devices": {},
            "expect": None,
            "source": "llm",
        },
        "lab": lab_facts(topology, lab_dir),
        "static_findings": [],
        "twin": {
            "backend": None,
            "tier": None,
            "nodes": len(topology.nodes),
            "links": len(topology.links),
            "spawned": False,
            "load_errors": [],
            "warnings": list(topology.warnings),
            "differences_from_production": [],
        },  # fmt: skip
        "apply": {"rejected": []},
        "diff": None,
        "invariants": [],
        "baseline_invariants": [],
        "rollback": {"lines": {}, "verified": False, "mismatch": [], "skipped": True},
        "steps": [
            {"name": "propose", "status": "failed", "seconds": round(seconds, 3), "why": reason["message"]}
        ]
        + [
            {"name": step, "status": "skipped", "seconds": 0.0, "why": skipped}
            for step in ("precheck", "static")
        ],
        "timings": {"propose": round(seconds, 3)},
        "snapshots": {},
        "llm": proposal.provenance,
        "egress": egress_record(),
        "versions": {"aegis": AEGIS_VERSION, "frr": None, "python": platform.python_version()},
        "started_at": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_at": datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
