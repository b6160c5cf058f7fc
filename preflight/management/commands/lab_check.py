"""`manage.py lab_check LAB_DIR [--json] [--timeout S]`: does this lab load and converge?

Exit 0 when it converged, 1 when it did not settle (or FRR failed to start), 2 on bad input
(a topology error, or a host that cannot run a twin: the message says what to fix).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from twin.base import TopologyError, TwinError
from twin.labcheck import lab_check, lab_check_text


class Command(BaseCommand):
    help = "Spawn a lab as a real FRR twin, wait for convergence, snapshot, tear down and report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("lab_dir", help="lab folder with one *.clab.yml, or the .clab.yml file")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for convergence")
        parser.add_argument("--stable-for", type=float, default=3.0,
                            help="seconds the state must stay unchanged to count as converged")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["timeout"] <= 0 or opts["stable_for"] < 0:
            self._fail(opts, "input error: --timeout must be positive and --stable-for not negative", 2)
        def progress(step: str, status: str, message: str, data: dict[str, Any]) -> None:
            if not opts["json"] and opts["verbosity"] > 1:
                self.stderr.write(f"[{step}] {status}: {message}")
        try:
            report = lab_check(opts["lab_dir"], timeout=opts["timeout"], stable_for=opts["stable_for"],
                               progress=progress)
        except TopologyError as exc:
            self._fail(opts, f"input error: {exc}", 2)
        except TwinError as exc:
            # Before spawn (no root, no FRR) this is about the host; after, FRR refused to start.
            code = 2 if "needs root" in str(exc) or "not installed" in str(exc) or "not found" in str(exc) else 1
            self._fail(opts, f"twin error: {exc}", code)
        self.stdout.write(json.dumps(report) if opts["json"] else lab_check_text(report))
        sys.exit(0 if report["converged"] else 1)

    def _fail(self, opts: dict[str, Any], message: str, code: int) -> None:
        if opts["json"]:
            self.stdout.write(json.dumps({"converged": False, "error": message}))
        self.stderr.write(message)
        sys.exit(code)
