"""`manage.py promote BUNDLE --approval FILE [--approval FILE ...] --inventory FILE [--live]`.

Prints each gate with pass/fail and its reasons, the drift result, and per device the
dry-run delta or the live output. Exit 0: passed (dry-run shown or applied); 1: refused or
failed (a record was written either way); 2: input error (nothing attempted, no record),
with a message naming what to fix.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from promote import services

EXIT_PASSED, EXIT_REFUSED, EXIT_INPUT = 0, 1, 2


class Command(BaseCommand):
    help = "Promote a sealed bundle to the devices: gate G1-G4, drift check, dry-run (default) or live."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bundle", help="bundle.json, or the examiner PDF carrying it")
        parser.add_argument(
            "--approval",
            action="append",
            default=[],
            metavar="FILE",
            help="a signed approval.json (downloaded from the decision page); repeat for several",
        )
        parser.add_argument(
            "--inventory",
            metavar="FILE",
            help="device inventory YAML (default: the AEGIS_DEVICE_INVENTORY setting)",
        )
        parser.add_argument(
            "--live",
            action="store_true",
            help="apply for real; refused unless the site sets AEGIS_ALLOW_LIVE_PROMOTION",
        )
        parser.add_argument(
            "--as",
            dest="actor",
            default="",
            help="who is promoting, for the record (default: cli:<login name>)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            bundle = services.bundle_read(_read(opts["bundle"], "bundle"), name=opts["bundle"])
            approvals = [services.approval_read(_read(f, "approval"), name=f) for f in opts["approval"]]
            if opts["inventory"]:
                devices = services.inventory_read(opts["inventory"])
                where = f"inventory {opts['inventory']}"
            else:
                devices = services.inventory_site()
                where = f"inventory {settings.AEGIS_DEVICE_INVENTORY} (AEGIS_DEVICE_INVENTORY)"
            services.inventory_covers(bundle, devices, where=where)
        except services.PromotionInputError as exc:
            self.stderr.write(f"input error: {exc}")
            sys.exit(EXIT_INPUT)
        actor = opts["actor"] or f"cli:{getpass.getuser()}"
        row = services.promotion_attempt(
            actor=None,
            actor_name=actor,
            bundle=bundle,
            approvals=approvals,
            devices=devices,
            live=opts["live"],
            via="cli",
        )
        self._print(row)
        sys.exit(EXIT_PASSED if row.outcome in ("dry_run", "applied") else EXIT_REFUSED)

    def _print(self, row: Any) -> None:
        rec = row.record
        w = self.stdout.write
        w(f"bundle   {rec['bundle']['digest']} (run {rec['bundle']['run_id'] or '?'})")
        w(f"actor    {rec['actor']}   mode {rec['mode']}   at {rec['at']}")
        for check in rec["gate"]["checks"]:
            mark = "pass" if check["passed"] else "FAIL"
            w(f"  {check['gate']:<6} {mark}  {check['name']}")
            for reason in check["reasons"]:
                w(f"           - {reason}")
        for name, dev in sorted(rec["devices"].items()):
            drift = dev.get("drift") or {}
            if drift:
                state = "no drift" if drift.get("ok") else "DRIFT"
                w(f"  device {name}: {state} ({drift.get('method', '?')})")
                if not drift.get("ok") and drift.get("diff"):
                    for line in str(drift["diff"]).splitlines()[:40]:
                        w(f"           {line}")
            dry = dev.get("dry_run")
            if dry:
                w(f"  device {name}: dry-run, parser {'ok' if dry['syntax_ok'] else 'REFUSED'}")
                for err in dry.get("syntax_errors") or []:
                    w(f"           ! {err}")
                for line in dry.get("lines_to_delete") or []:
                    w(f"           - {line}")
                for line in dry.get("lines_to_add") or []:
                    w(f"           + {line}")
                if not (dry.get("lines_to_delete") or dry.get("lines_to_add")):
                    w("           (no change)")
            apply = dev.get("apply")
            if apply:
                w(f"  device {name}: live, applied={apply.get('applied')} saved={apply.get('saved')}")
                if apply.get("error"):
                    w(f"           ! {apply['error']}")
                for line in str(apply.get("output") or "").splitlines()[-20:]:
                    w(f"           {line}")
        if row.verification is not None:
            w(f"verification {'matches the twin' if row.verification['ok'] else 'DIFFERS from the twin'}")
        for reason in rec["reasons"]:
            w(f"reason   {reason}")
        w(f"outcome  {row.outcome}")
        w(f"record   {row.record_digest} (ledger leaf {row.ledger_index}, id {row.pk})")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise services.PromotionInputError(f"{what} {path}: cannot read it ({exc.strerror})") from None
