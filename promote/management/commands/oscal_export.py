"""`manage.py oscal_export BUNDLE_JSON [--out FILE] [--frameworks a,b]`: OSCAL assessment-results for a bundle.

It lives in promote/, the top app, because `--approvals` reads the decisions promote records;
the mapping and the OSCAL document are compliance's. Thin shell: reads the file, calls compliance.oscal, validates against the official schema and
writes only a valid document (atomically). Every input problem is a CommandError that says
what to fix; nothing is written then.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from aegis_base.core.files import atomic_write
from compliance.catalogues import UnknownFramework
from compliance.crosswalk import CrosswalkError, controls_for
from compliance.oscal import OSCAL_VERSION, OscalError, assessment_results, bundle_view, oscal_check
from compliance.selectors import frameworks_default
from promote.selectors import approvals_for_bundle


class Command(BaseCommand):
    help = (
        "Export the OSCAL 1.2 assessment-results JSON for a sealed bundle.json (or an unsealed result.json), "
        "validated against the official OSCAL schema."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "bundle", help="bundle.json written by sealing (a plain result.json is accepted, marked unsealed)"
        )
        parser.add_argument("--out", help="write here instead of standard output")
        parser.add_argument(
            "--frameworks",
            help="comma-separated framework ids to map afresh (default: the rows sealed in the bundle, "
            "else settings.AEGIS_FRAMEWORKS)",
        )
        parser.add_argument(
            "--approvals",
            action="store_true",
            help="apply the approval decisions recorded in the database on this bundle's digest "
            "(decided after sealing), and map afresh",
        )

    def handle(self, *args, **options):
        path = Path(options["bundle"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{path}: cannot read: {exc.strerror}") from exc
        if data[:5] == b"%PDF-":
            raise CommandError(
                f"{path} is a PDF: give the bundle.json sealed with it (the PDF carries it as an attachment: "
                "`pdfdetach -saveall FILE.pdf`)"
            )
        try:
            bundle = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: not JSON: {exc}") from exc
        try:
            view = bundle_view(bundle)
            controls = None
            approvals = None
            if options["approvals"]:
                approvals = approvals_for_bundle(view["digest"])
            if options["frameworks"] or options["approvals"] or not view["controls"]:
                frameworks = (
                    [f.strip() for f in options["frameworks"].split(",") if f.strip()]
                    if options["frameworks"]
                    else view["frameworks"] or frameworks_default()
                )
                controls = controls_for(
                    view["result"],
                    frameworks,
                    approvals=approvals,
                    high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS,
                    operator=view["operator"],
                    seal={"digest": view["digest"], "ledger_index": view["ledger_index"]}
                    if view["sealed"]
                    else None,
                )
            document = assessment_results(
                bundle,
                controls,
                bundle_href=path.name,
                bundle_file_sha256=hashlib.sha256(data).hexdigest(),
            )
            oscal_check(document)
        except (OscalError, CrosswalkError, UnknownFramework) as exc:
            raise CommandError(f"{path}: {exc}") from exc

        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if options["out"]:
            _write_atomic(Path(options["out"]), text)
        else:
            self.stdout.write(text, ending="")
        ar = document["assessment-results"]
        states = Counter(
            next(p["value"] for p in f["props"] if p["name"] == "aegis-state")
            for r in ar["results"]
            for f in r.get("findings", [])
        )
        where = options["out"] or "standard output"
        self.stderr.write(
            f"{where}: OSCAL {OSCAL_VERSION} assessment-results, valid against the official schema; "
            f"{len(ar['results'])} framework(s), {sum(states.values())} finding(s) "
            f"({states['satisfied']} satisfied, {states['pending']} pending, {states['not_satisfied']} not satisfied)"
            + (f"; {len(approvals)} recorded decision(s) applied" if approvals is not None else "")
            + (
                ""
                if view["sealed"]
                else "; WARNING: input is an unsealed result, not tamper-evident evidence"
            )
        )


def _write_atomic(out: Path, text: str) -> None:
    if out.parent and not out.parent.exists():
        raise CommandError(f"{out.parent}: no such folder")
    try:
        atomic_write(out, text)
    except OSError as exc:
        raise CommandError(f"{out}: cannot write: {exc.strerror}") from exc
