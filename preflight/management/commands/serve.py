"""Start the whole app for a first try: migrate, roles, labs, then daphne (http + websocket).

    python manage.py serve            # http://127.0.0.1:8088/preflight

With no CELERY_BROKER_URL the runs execute on the in-process worker inside this server; the
netns twin then needs this process to be root. At a site, run daphne unprivileged and a
privileged Celery worker (`celery -A aegis_site worker`), see docs/web.md.
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand

from preflight.services import dispatch_mode, lab_sync, runs_recover
from twin.reap import twin_reap_orphans


class Command(BaseCommand):
    help = "Migrate, set up roles and labs, then serve AEGIS with daphne on port 8088."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8088)
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args, **options):
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        call_command("setup_roles", verbosity=0, stdout=self.stdout)
        for lab in lab_sync():
            self.stdout.write(f"lab {lab.name}: {', '.join(lab.routers)}")
        mode = dispatch_mode()
        reaped = twin_reap_orphans()
        if reaped:
            self.stdout.write(f"removed {len(reaped)} twin(s) left by a process that died: {', '.join(reaped)}")
        if mode == "thread":
            failed = runs_recover()
            if failed:
                self.stdout.write(f"{failed} run(s) left by a previous server marked failed")
        self.stdout.write(
            f"runs execute via: {mode}; open http://{options['bind']}:{options['port']}/preflight"
        )
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(
            ["-b", options["bind"], "-p", str(options["port"]), "aegis_site.asgi:application"]
        )
