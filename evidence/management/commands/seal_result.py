"""`manage.py seal_result RESULT.json --lab DIR [--change FILE] [--out DIR]`: seal an existing result."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Seal a preflight result.json: signed bundle.json, ledger entry and examiner report.pdf "
        "(for results produced without sealing, e.g. by an older run)."
    )

    def add_arguments(self, parser):
        parser.add_argument("result", help="result.json written by `manage.py preflight`")
        parser.add_argument(
            "--lab", help="the lab folder the run used (its files are recorded in the bundle)"
        )
        parser.add_argument(
            "--change", help="the change file as submitted (default: the change inside the result)"
        )
        parser.add_argument("--out", help="output folder (default: the result's folder)")
        parser.add_argument(
            "--framework", action="append", help="framework id; repeatable (default: site setting)"
        )
        parser.add_argument("--operator", help="who ran the change (recorded in the bundle)")

    def handle(self, *args, **opts):
        from evidence.services import SealError, run_seal

        result_path = Path(opts["result"])
        try:
            result = json.loads(result_path.read_text())
            change_text = Path(opts["change"]).read_text() if opts["change"] else None
        except OSError as exc:
            raise CommandError(f"{exc.filename}: {exc.strerror}") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"{result_path}: not a JSON result document ({exc})") from exc
        try:
            outcome = run_seal(
                result,
                lab_dir=opts["lab"],
                change_text=change_text,
                out_dir=Path(opts["out"]) if opts["out"] else result_path.parent,
                frameworks=opts["framework"],
                operator=opts["operator"],
            )
        except SealError as exc:
            raise CommandError(f"not sealed: {exc}") from exc
        self.stdout.write(f"seal: {outcome.digest}")
        self.stdout.write(f"ledger: leaf {outcome.ledger_index}")
        self.stdout.write(f"bundle: {outcome.bundle_path}")
        self.stdout.write(f"report: {outcome.pdf_path}")
