"""`manage.py lab_record LAB_DIR [--backend netns|simulator] [--timeout S] [--json]`.

Brings the lab up as a twin, waits until it settles, and appends the invariants it observes
(BGP sessions established, prefixes present, loopback reachability) to the lab's aegis.yml for
review. Exit 0 written (or nothing new), 1 the lab did not settle (nothing written), 2 bad input.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from preflight.core.pipeline import run_id_new
from preflight.core.record import RecordError, lab_record
from twin import get_backend
from twin.base import TopologyError, TwinError


class Command(BaseCommand):
    help = "Record the invariants a lab satisfies (sessions, prefixes, loopback reachability) into its aegis.yml."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("lab_dir", help="lab folder with one *.clab.yml (aegis.yml is written beside it)")
        parser.add_argument("--backend", default="netns", choices=["netns", "simulator"],
                            help="netns: real FRR (root); simulator: seeded, for trying it out (marked simulated)")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the lab to settle")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["backend"] == "netns" and os.geteuid() != 0:
            self._fail(2, "the netns backend needs root to create namespaces; run as root "
                          "(or try --backend simulator)", opts["json"])
        try:
            out = lab_record(opts["lab_dir"], get_backend(opts["backend"]), run_id=run_id_new(),
                             converge_timeout=opts["timeout"])
        except TopologyError as exc:
            self._fail(2, f"the lab cannot be loaded: {exc}", opts["json"])
        except (RecordError, TwinError) as exc:
            self._fail(1, str(exc), opts["json"])
        if opts["json"]:
            self.stdout.write(json.dumps(out))
            return
        added = out["added"]
        if not added:
            self.stdout.write(f"{out['path']}: nothing new (its {out['kept']} invariant(s) already cover what holds)")
            return
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(out["counts"].items()))
        self.stdout.write(f"{out['path']}: added {len(added)} invariant(s) ({counts}); kept {out['kept']} "
                          f"existing; twin {out['tier']}, settled in {out['convergence_s']:.1f} s")
        for entry in added:
            kind, spec = next(iter(entry.items()))
            self.stdout.write(f"  + {kind}: " + ", ".join(f"{k}={v}" for k, v in spec.items()))
        if out["comments_dropped"]:
            self.stdout.write(self.style.WARNING("aegis.yml was rewritten from its data (its `invariants:` list "
                                                 "was not last): comments in it were dropped"))
        self.stdout.write("review the added lines and prune what is incidental before committing.")

    def _fail(self, code: int, message: str, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"error": message, "exit_code": code}))
        else:
            self.stderr.write(f"lab_record: {message}")
        sys.exit(code)
