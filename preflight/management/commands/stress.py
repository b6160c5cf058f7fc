"""`manage.py stress --runs N --seed S`: the pipeline's invariants under adversarial input
and injected faults, on the simulator backend. Exits 1 on any violation."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from preflight.core.stress import stress_run
from twin.base import TopologyError


class Command(BaseCommand):
    help = "Stress the preflight pipeline on the seeded simulator; prints counts, exits 1 on any violation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=25_000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--lab", default="labs/triangle", help="lab the proposals target")
        parser.add_argument("--recheck-every", type=int, default=10,
                            help="run every Nth case twice to check same seed -> same result (0: never)")
        parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["runs"] < 1:
            self.stderr.write("input error: --runs must be at least 1")
            sys.exit(2)
        try:
            report = stress_run(opts["lab"], runs=opts["runs"], seed=opts["seed"],
                                recheck_every=opts["recheck_every"])
        except TopologyError as exc:
            self.stderr.write(f"input error: the lab cannot be loaded: {exc}")
            sys.exit(2)
        data = report.as_dict()
        if opts["json"]:
            self.stdout.write(json.dumps(data))
        else:
            self.stdout.write(f"runs: {data['runs']} in {data['seconds']} s ({data['runs_per_second']} runs/s), "
                              f"seed {opts['seed']}, result digest {data['digest']}")
            for key in ("verdicts", "categories", "input_errors", "faults_injected", "faults_fired"):
                self.stdout.write(f"{key}: " + ", ".join(f"{k} {v}" for k, v in data[key].items()))
            self.stdout.write(f"twins spawned {data['spawns']}, torn down {data['teardowns']}; "
                              f"rechecked for determinism {data['rechecked']}")
            if data["violations"]:
                self.stdout.write(self.style.ERROR(f"VIOLATIONS: {data['violations']}"))
                for v in data["violation_examples"]:
                    self.stdout.write(f"  {v}")
            else:
                self.stdout.write(self.style.SUCCESS("violations: 0"))
        sys.exit(1 if report.violations else 0)
