"""`manage.py ledger_check`: recompute the ledger's Merkle tree and check every checkpoint."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Recompute the evidence ledger from all leaves; check every signed checkpoint and bundle row."

    def handle(self, *args, **opts):
        from evidence.services import ledger_check

        report = ledger_check()
        for line in report.lines:
            self.stdout.write(line)
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(f"FAIL  {problem}"))
        if not report.ok:
            self.stdout.write(self.style.ERROR(f"LEDGER DAMAGED: {len(report.problems)} problem(s)"))
            raise SystemExit(1)
        self.stdout.write(
            self.style.SUCCESS(
                f"LEDGER OK: {report.size} leaves, {report.checkpoints} checkpoints, {report.bundles} bundles"
            )
        )
