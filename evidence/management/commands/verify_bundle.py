"""`manage.py verify_bundle FILE`: verify a sealed bundle (bundle.json, or a PDF carrying one)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Verify an AEGIS evidence bundle (bundle.json or the examiner PDF) against this site's trusted keys."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="bundle.json, or a report.pdf with the bundle attached")
        parser.add_argument("--key", action="append", default=[], help="also trust this public key (PEM)")

    def handle(self, *args, **opts):
        from evidence.services import bundle_verify
        from evidence.verify_standalone import keys_from_paths

        path = Path(opts["file"])
        try:
            data = path.read_bytes()
            extra = keys_from_paths(opts["key"], [])
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise CommandError(f"--key: {exc}") from exc
        checks = bundle_verify(data, extra_keys=extra)
        for c in checks:
            line = f"{'PASS' if c.ok else 'FAIL'}  {c.name:<17} {c.detail}"
            self.stdout.write(self.style.SUCCESS(line) if c.ok else self.style.ERROR(line))
        failed = [c.name for c in checks if not c.ok]
        if failed or len(checks) < 10:
            self.stdout.write(
                self.style.ERROR(f"NOT VERIFIED: failing check: {', '.join(failed) or 'incomplete'}")
            )
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(f"VERIFIED: all {len(checks)} checks hold"))
