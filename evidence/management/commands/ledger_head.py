"""`manage.py ledger_head [--out FILE]`: the latest signed checkpoint, to keep outside AEGIS."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Print (or write) the ledger's latest signed checkpoint. Keep it where the AEGIS operators "
        "cannot change it (WORM media, the auditors' files); `ledger_check --checkpoint FILE` later "
        "proves the ledger still extends it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", help="write the checkpoint to this file instead of printing it")

    def handle(self, *args, **opts):
        from evidence.models import Cosignature
        from evidence.selectors import checkpoint_latest

        head = checkpoint_latest()
        if head is None:
            raise CommandError("the ledger is empty: nothing has been sealed yet")
        # A cosigned checkpoint is the note followed by the witnesses' lines (C2SP).
        note = head.note + "".join(
            Cosignature.objects.filter(tree_size=head.tree_size).values_list("line", flat=True)
        )
        if opts["out"]:
            try:
                Path(opts["out"]).write_text(note)
            except OSError as exc:
                raise CommandError(f"{opts['out']}: {exc.strerror or exc}") from exc
            self.stdout.write(f"checkpoint of size {head.tree_size} written to {opts['out']}")
        else:
            self.stdout.write(note, ending="")
