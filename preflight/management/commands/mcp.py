"""`manage.py mcp [--operator NAME] [--backend B]`: the MCP server for AI agents, over stdio.

Tools `labs`, `dry_run`, `result` (preflight/mcp_server.py); no promotion tool. Runs are recorded
for the operator NAME (default `agent`, created as an operator on first use like a CLI operator)
and sealed with `change.source = "agent"`. Point an MCP client at this command, e.g.
`{"command": "/opt/aegis/aegis", "args": ["manage", "mcp"]}`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from preflight import services
from preflight.mcp_server import mcp_server_build
from twin import BACKENDS


class Command(BaseCommand):
    help = "Serve the AEGIS dry-run tools (labs, dry_run, result) to an AI agent over MCP on stdio."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--operator", default="agent",
                            help="user the agent's runs are recorded for (an operator; default: agent)")
        parser.add_argument("--backend", default=settings.AEGIS_TWIN_BACKEND, choices=BACKENDS,
                            help="twin backend of every dry run (default AEGIS_TWIN_BACKEND)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            operator = services.cli_operator(opts["operator"])
        except PermissionError as exc:
            raise CommandError(str(exc)) from None
        services.lab_sync()  # the labs under AEGIS_LABS_DIR are what `labs` lists
        mcp_server_build(operator=operator, backend=opts["backend"]).run("stdio")
