"""`manage.py setup_roles`: create the operator, approver and auditor groups with their model permissions."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from aegis_base.services import roles_setup


class Command(BaseCommand):
    help = "Create the operator, approver and auditor groups and their permissions. Safe to re-run."

    def handle(self, *args, **options):
        for role, perms in roles_setup().items():
            self.stdout.write(f"{role}: {', '.join(perms) or '(no model permissions yet)'}")
