"""Verdict rules: blocked | needs_approval | ship_ready, each with its reasons.

blocked        any blocking reason (static error, rejected line, twin did not settle, a session /
               adjacency / prefix / reachability lost or a route turned into a blackhole that
               `expect` did not declare, invariant violated, rollback did not restore the
               baseline, a routing daemon exited mid-run, any step failed)
needs_approval no blocking reason, risk tier medium or high
ship_ready     no blocking reason, risk tier low
"""

from __future__ import annotations

BLOCKING_CODES = frozenset({
    "STATIC_ERROR", "APPLY_REJECTED", "SPAWN_FAILED", "BASELINE_NOT_CONVERGED", "CHANGE_NOT_CONVERGED",
    "ROLLBACK_NOT_CONVERGED", "SESSION_LOST", "ADJACENCY_LOST", "PREFIX_LOST", "PREFIX_BLACKHOLED",
    "REACHABILITY_LOST",
    "INVARIANT_VIOLATED", "ROLLBACK_NOT_VERIFIED", "STEP_FAILED", "TEARDOWN_FAILED", "TWIN_INCOMPLETE",
    "BASELINE_INVARIANT_VIOLATED", "DATAPLANE_LOOP", "DATAPLANE_BLACKHOLE",
    "LINE_NOT_APPLIED", "NO_OP_CHANGE", "ROLLBACK_LINES_FAILED",
    "REDUNDANCY_LOST", "DAEMON_EXITED",
})
VERDICTS = ("blocked", "needs_approval", "ship_ready")


def reason(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def verdict_decide(reasons: list[dict[str, str]], risk_tier: str | None) -> tuple[str, list[dict[str, str]]]:
    """The verdict and the full reason list (risk and all-clear reasons added here)."""
    out = list(reasons)
    if any(r["code"] in BLOCKING_CODES for r in reasons):
        return "blocked", out
    if risk_tier is None:
        # No risk assessment means something upstream did not finish: never ship on that.
        out.append(reason("TWIN_INCOMPLETE", "the run did not reach a risk assessment"))
        return "blocked", out
    if risk_tier in ("medium", "high"):
        out.append(reason(f"RISK_{risk_tier.upper()}",
                          f"all checks passed, but the risk tier is {risk_tier}: a human approver must sign off"))
        return "needs_approval", out
    out.append(reason("CLEAN", "all checks passed and the risk tier is low"))
    return "ship_ready", out
