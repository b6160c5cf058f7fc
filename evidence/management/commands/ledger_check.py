"""`manage.py ledger_check [--checkpoint FILE]`: recompute the ledger and check every checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Recompute the evidence ledger from all leaves; check every signed checkpoint and bundle row. "
        "With --checkpoint, also prove the ledger extends a checkpoint kept from earlier."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            help="an old checkpoint (signed note), or a bundle.json whose ledger proof carries one",
        )

    def handle(self, *args, **opts):
        from evidence.services import LedgerError, ledger_check, ledger_extends

        report = ledger_check()
        for line in report.lines:
            self.stdout.write(line)
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(f"FAIL  {problem}"))
        if opts["checkpoint"]:
            note = self._note(Path(opts["checkpoint"]))
            try:
                proof = ledger_extends(note)
            except LedgerError as exc:
                report.problems.append(str(exc))
                self.stdout.write(self.style.ERROR(f"FAIL  {exc}"))
            else:
                self.stdout.write(
                    f"consistency: the ledger (size {proof['new_size']}) extends the given checkpoint "
                    f"(size {proof['old_size']}), {len(proof['proof'])} proof hashes"
                )
        if not report.ok:
            self.stdout.write(self.style.ERROR(f"LEDGER DAMAGED: {len(report.problems)} problem(s)"))
            raise SystemExit(1)
        self.stdout.write(
            self.style.SUCCESS(
                f"LEDGER OK: {report.size} leaves, {report.checkpoints} checkpoints, {report.bundles} bundles"
            )
        )

    @staticmethod
    def _note(path: Path) -> str:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: cannot read ({exc})") from exc
        if text.lstrip().startswith("{"):
            try:
                return json.loads(text)["ledger"]["tlog_proof"].partition("\n\n")[2]
            except (ValueError, KeyError, TypeError) as exc:
                raise CommandError(f"{path}: not an AEGIS bundle with a ledger proof") from exc
        return text
