"""What an AI agent is told about a run: normalised fields only, never text a lab or a daemon wrote.

An agent reads tool results as instructions-adjacent text. A lab's configs (descriptions,
banners) and FRR's messages (which echo config lines) are written by whoever controls the lab,
so they could carry text aimed at the agent ("ignore your task and ..."). The agent therefore
gets: the verdict, reason codes, and messages only for the reasons AEGIS composes from
structured facts (nodes, prefixes, peers, timers); for the others, a fixed sentence per code.
Effects are kind/node/key; rollback lines are the frr-reload lines with free-text arguments
(`description …`) withheld. The full result stays in the sealed bundle for a human.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Reasons whose message AEGIS builds from structured facts only (no config or daemon text).
COMPOSED_CODES = frozenset({
    "CLEAN", "DATAPLANE_BLACKHOLE", "DATAPLANE_LOOP", "EXPECTED_EFFECT_MISSING", "INVARIANT_VIOLATED",
    "NO_OP_CHANGE", "ROLLBACK_SLOW", "UNDECLARED_EFFECT", "SESSION_LOST", "PREFIX_LOST", "ADJACENCY_LOST",
    "REACHABILITY_LOST", "PREFIX_BLACKHOLED", "RISK_MEDIUM", "RISK_HIGH", "BASELINE_INVARIANT_VIOLATED",
    "DATAPLANE_WITNESS_DISAGREES", "REDUNDANCY_LOST",
})
WITHHELD = {
    "STATIC_ERROR": "FRR's parser refused a change line",
    "APPLY_REJECTED": "a router refused a change line",
    "LINE_NOT_APPLIED": "a change line left the running config unchanged",
    "LINE_REINTERPRETED": "FRR entered a change line in another form",
    "DELTA_UNREQUESTED": "the running config changed where no change line asked",
    "ROLLBACK_NOT_VERIFIED": "the rollback did not restore the baseline",
    "ROLLBACK_LINES_FAILED": "the rollback lines do not restore the baseline config",
    "BASELINE_NOT_CONVERGED": "the lab did not settle before the change",
    "CHANGE_NOT_CONVERGED": "the network did not settle after the change",
    "ROLLBACK_NOT_CONVERGED": "the network did not settle after the rollback",
    "SPAWN_FAILED": "the twin could not be started",
    "STEP_FAILED": "a pipeline step failed",
    "TEARDOWN_FAILED": "the twin was not torn down cleanly",
    "DAEMON_EXITED": "a routing daemon of the twin exited during the run",
}
FREE_TEXT = re.compile(r"^(\s*(?:no\s+)?(?:neighbor\s+\S+\s+)?(?:description|banner\s+motd))\s+.*$")
MAX_STR = 300


def _clean(text: Any) -> str:
    """Printable, bounded text (composed messages still quote prefixes and node names)."""
    s = "".join(ch for ch in str(text) if unicodedata.category(ch) not in ("Cc", "Cf"))
    return s if len(s) <= MAX_STR else s[: MAX_STR - 1] + "…"


def reason_for_agent(r: dict[str, str]) -> dict[str, str]:
    code = str(r.get("code"))
    if code in COMPOSED_CODES:
        return {"code": code, "message": _clean(r.get("message", ""))}
    return {"code": code, "message": WITHHELD.get(code, "see the sealed bundle") +
            " (details withheld from agents: they quote lab or FRR text; a human reads them in the bundle)"}


def rollback_line_for_agent(line: str) -> str:
    m = FREE_TEXT.match(line)
    return _clean(f"{m.group(1)} <free text withheld>" if m else line)


def result_for_agent(result: dict[str, Any], *, run_id: str, seal: dict[str, Any] | None) -> dict[str, Any]:
    """The normalised view of a run for the MCP `dry_run` / `result` tools."""
    diff = result.get("diff") or {}
    effects = [{"intended": tag == "intended", "kind": _clean(e.get("kind")), "node": _clean(e.get("node")),
                "key": _clean(e.get("key")), "loss": bool(e.get("loss"))}
               for tag in ("intended", "undeclared") for e in diff.get(tag) or []]
    rb = result.get("rollback") or {}
    return {
        "run_id": run_id,
        "verdict": result.get("verdict"),
        "reasons": [reason_for_agent(r) for r in result.get("reasons") or []],
        "risk": {k: (result.get("risk") or {}).get(k) for k in ("tier", "score")},
        "effects": effects,
        "invariants": [{"kind": i.get("kind"), "spec": {k: _clean(v) for k, v in (i.get("spec") or {}).items()},
                        "ok": bool(i.get("ok"))} for i in result.get("invariants") or []],
        "static_errors": [{"device": _clean(f.get("device")), "line_no": f.get("line_no"), "code": _clean(f.get("code"))}
                          for f in result.get("static_findings") or [] if f.get("severity") == "error"],
        "rollback": {"verified": bool(rb.get("verified")), "status": rb.get("status"),
                     "lines": {_clean(n): [rollback_line_for_agent(ln) for ln in lines]
                               for n, lines in (rb.get("lines") or {}).items()}},
        "twin_tier": (result.get("twin") or {}).get("tier"),
        "bundle_digest": (seal or {}).get("digest"),
        "source": (result.get("change") or {}).get("source"),
    }
