"""Register every lab folder under AEGIS_LABS_DIR (one `.clab.yml` each) as a Lab row."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from preflight.services import lab_sync


class Command(BaseCommand):
    help = "Create or refresh Lab rows from the folders in AEGIS_LABS_DIR."

    def handle(self, *args, **options):
        labs = lab_sync()
        for lab in labs:
            self.stdout.write(
                f"{lab.name}: {len(lab.routers)} routers ({', '.join(lab.routers)}) in {lab.folder}"
            )
        if not labs:
            self.stdout.write("no loadable lab found (each lab is a folder with one .clab.yml)")
