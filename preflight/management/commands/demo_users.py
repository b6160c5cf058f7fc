"""Create one user per role for a first try; print each password once."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from aegis_base.services import roles_setup

DEMO_USERS = [("operator", "operator"), ("approver", "approver"), ("auditor", "auditor")]


class Command(BaseCommand):
    help = "Create demo users operator/approver/auditor (one per role). Existing users keep their password."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="give existing demo users a new password")

    def handle(self, *args, **options):
        roles_setup()
        User = get_user_model()
        for username, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            user.groups.add(Group.objects.get(name=role))
            if created or options["reset"]:
                password = secrets.token_urlsafe(12)
                user.set_password(password)
                user.save()
                self.stdout.write(f"{username:<9} role={role:<9} password={password}")
            else:
                self.stdout.write(
                    f"{username:<9} role={role:<9} (exists; password unchanged, --reset for a new one)"
                )
        self.stdout.write("These passwords are shown once. Sign in at /accounts/login/.")
