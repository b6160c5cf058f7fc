"""Create the operator, approver and auditor groups with their model permissions (idempotent)."""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

# Model-level rights per role. Row-level rights (which run) are object permissions that the
# services grant when rows are created; these say what kind of thing a role may do at all.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    "operator": ["preflight.add_changerequest", "preflight.add_preflightrun"],
    "approver": ["preflight.decide_preflightrun", "promote.add_approval", "promote.view_approval"],
    "auditor": ["evidence.view_bundle", "preflight.view_auditentry", "promote.view_approval"],
}


def roles_setup() -> dict[str, list[str]]:
    """Create/refresh the role groups; returns the permissions each holds. Skips models not installed."""
    granted: dict[str, list[str]] = {}
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".", 1)
            try:
                apps.get_app_config(app_label)
            except LookupError:
                continue
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.set(wanted)  # set, not add: re-running converges on the table above
        granted[role] = sorted(f"{p.content_type.app_label}.{p.codename}" for p in wanted)
    return granted


class Command(BaseCommand):
    help = "Create the operator, approver and auditor groups and their permissions. Safe to re-run."

    def handle(self, *args, **options):
        for role, perms in roles_setup().items():
            self.stdout.write(f"{role}: {', '.join(perms) or '(no model permissions yet)'}")
