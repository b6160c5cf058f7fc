"""`manage.py twin_reap`: remove the twins of crashed runs (owner process dead); never anything else."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from twin.reap import twin_reap, twin_runs
from twin.runstate import stray_frr


class Command(BaseCommand):
    help = "Tear down leftover twins whose owning process has exited (AEGIS's own run records only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true",
                            help="print {removed: [...], still_running: [...], stray_frr: [...]}")

    def handle(self, *args: Any, **opts: Any) -> None:
        removed = twin_reap()
        running = [r for r in twin_runs() if r["owner_alive"]]
        # FRR daemons outside the host's network namespace that no twin owns and AEGIS did not mark
        # (the reaper ends marked ones itself): reported, never killed - they may be someone else's.
        strays = stray_frr()
        if opts["json"]:
            self.stdout.write(json.dumps({"removed": removed, "still_running": running, "stray_frr": strays}))
            return
        if removed:
            self.stdout.write(f"removed {len(removed)} leftover twin(s): {', '.join(removed)}")
        else:
            self.stdout.write("no leftover twins")
        for r in running:
            self.stdout.write(f"left alone (owner {r['owner_pid']} alive): {r['run_id']} lab {r['lab']}")
        for st in strays:
            self.stdout.write(f"FRR daemon no twin owns (not touched; end it by pid if it is a leftover): "
                              f"pid {st['pid']} {st['argv']}")
