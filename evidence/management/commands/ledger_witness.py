"""`manage.py ledger_witness --key FILE --name NAME --state FILE`: cosign the ledger as a witness."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Cosign the ledger's latest checkpoint as an independent witness (e.g. the audit function), "
        "after proving the log only grew since the checkpoint in the witness's own state file. "
        "The witness key and state file belong to the witness, not to the AEGIS operators."
    )

    def add_arguments(self, parser):
        parser.add_argument("--key", required=True, help="the witness's Ed25519 private key (PEM, mode 0600)")
        parser.add_argument(
            "--name", required=True, help="the witness's name, e.g. audit.example.org/witness"
        )
        parser.add_argument(
            "--state", required=True, help="the witness's record of the last checkpoint it cosigned"
        )

    def handle(self, *args, **opts):
        from evidence.core.checkpoint import CheckpointError
        from evidence.core.keys import KeyFileError, signing_key_load
        from evidence.services import LedgerError, ledger_witness

        try:
            key = signing_key_load(opts["key"])
            row = ledger_witness(key, opts["name"], Path(opts["state"]))
        except (KeyFileError, CheckpointError) as exc:
            raise CommandError(str(exc)) from exc
        except LedgerError as exc:
            self.stdout.write(self.style.ERROR(f"REFUSED: {exc}"))
            raise SystemExit(1) from exc
        self.stdout.write(
            self.style.SUCCESS(f"cosigned checkpoint of size {row.tree_size} as {row.witness_name}")
        )
        self.stdout.write(row.line, ending="")
