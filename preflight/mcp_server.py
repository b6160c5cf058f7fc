"""The MCP server for AI agents (`manage.py mcp`, stdio): dry-run a change before acting on it.

Three tools, nothing else: `labs` (what can be dry-run), `dry_run` (lab + config lines per
router, or the full desired config per router -> verdict, reasons, effects, rollback, bundle
digest) and `result` (a run by id). There is no promotion tool: an agent can never reach a
device through AEGIS. Every dry run is an ordinary run through `services.run_start` (rows,
events, audit, seal) with `change.source = "agent"`, under the operator the server was started
for; the guards refuse what they refuse for anyone, and the agent gets the refusal's words.
What comes back is `preflight.core.agentview.result_for_agent`: normalised fields only, no
text a lab or a daemon wrote (see that module for why).
"""

from __future__ import annotations

from typing import Any

from django.db import close_old_connections
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from preflight import selectors, services
from preflight.core.agentview import result_for_agent
from preflight.models import Lab

INSTRUCTIONS = (
    "AEGIS dry-runs FRR routing changes on a digital twin of a lab (real FRR daemons) and returns a "
    "verdict: ship_ready, needs_approval or blocked, with reasons, the routing effects, the verified "
    "rollback lines and the digest of the sealed evidence bundle. Call `labs` to see the labs and their "
    "routers, then `dry_run` with either `lines` (config lines per router, entered in configuration mode) "
    "or `desired` (the full intended frr.conf per router; AEGIS computes the delta with frr-reload). "
    "Nothing here changes a real network: promotion needs a human approver outside this server."
)


class ToolRefused(Exception):
    """A request the server will not run; the message says what to fix (the agent sees it)."""


def _lab(name: str) -> Lab:
    lab = selectors.labs_enabled().filter(name=name).first()
    if lab is None:
        names = ", ".join(selectors.labs_enabled().values_list("name", flat=True)) or "(none)"
        raise ToolRefused(f"unknown lab {name!r}; labs: {names}")
    return lab


def _seal(run: Any) -> dict[str, Any] | None:
    return {"digest": run.bundle_digest} if run.bundle_digest else None


def tool_labs() -> list[dict[str, Any]]:
    """The labs an agent may dry-run against."""
    return [{"name": lab.name, "routers": list(lab.routers), "criticality": dict(lab.criticality),
             "invariants": len(lab.invariants or [])} for lab in selectors.labs_enabled().order_by("name")]


def tool_dry_run(operator: Any, *, backend: str, lab: str, title: str, lines: dict[str, str] | None,
                 desired: dict[str, str] | None, expect: dict[str, Any] | None) -> dict[str, Any]:
    """Run one change through the one run path and return the normalised view."""
    if bool(lines) == bool(desired):
        raise ToolRefused("give exactly one of `lines` (config lines per router) or `desired` (full config per router)")
    submission = services.Submission(
        lab=_lab(lab), title=title, devices=lines or None, desired=desired or None, expect=expect,
        backend=backend, source="agent", via="mcp")
    try:
        run = services.run_start(operator=operator, submission=submission, dispatch="inline")
    except services.ChangeInvalid as exc:
        raise ToolRefused("refused, nothing ran: " + "; ".join(m for msgs in exc.errors.values() for m in msgs)) from None
    except PermissionError as exc:
        raise ToolRefused(str(exc)) from None
    if run.result is None:
        return {"run_id": run.run_id, "status": run.status, "error": "the run did not produce a result"}
    return result_for_agent(run.result, run_id=run.run_id, seal=_seal(run))


def tool_result(operator: Any, run_id: str) -> dict[str, Any]:
    run = selectors.runs_for_user(operator).filter(run_id=run_id).first()
    if run is None:
        raise ToolRefused(f"no run {run_id!r} visible to this server's operator")
    if run.result is None:
        return {"run_id": run.run_id, "status": run.status}
    return result_for_agent(run.result, run_id=run.run_id, seal=_seal(run))


def mcp_server_build(*, operator: Any, backend: str) -> MCPServer:
    """The MCP server with its three tools, bound to `operator` and the twin `backend`."""
    server: MCPServer = MCPServer("aegis", instructions=INSTRUCTIONS)

    def db(fn: Any, *args: Any, **kw: Any) -> Any:
        # Tools run in worker threads: each call gets fresh, then closed, DB connections.
        close_old_connections()
        try:
            return fn(*args, **kw)
        except ToolRefused as exc:
            raise ToolError(str(exc)) from None  # the agent gets the words (any other error: a generic one)
        finally:
            close_old_connections()

    @server.tool()
    def labs() -> dict[str, Any]:
        """List the labs (name, routers, criticality, number of invariants) a change can be dry-run on."""
        return {"labs": db(tool_labs)}

    @server.tool()
    def dry_run(lab: str, title: str, lines: dict[str, str] | None = None, desired: dict[str, str] | None = None,
                expect: dict[str, Any] | None = None) -> dict[str, Any]:
        """Dry-run a change on the lab's twin: `lines` maps a router to config lines (configuration mode),
        or `desired` maps a router to its full intended frr.conf. Returns verdict, reasons, effects,
        invariants, rollback and the sealed bundle's digest. Never touches a real device."""
        return db(tool_dry_run, operator, backend=backend, lab=lab, title=title, lines=lines, desired=desired,
                  expect=expect)

    @server.tool()
    def result(run_id: str) -> dict[str, Any]:
        """The normalised result of an earlier run by its run id."""
        return db(tool_result, operator, run_id)

    return server
