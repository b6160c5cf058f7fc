"""Writes every app shares: the audit trail and the role groups."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

from aegis_base.models import AuditEntry


def audit_record(*, actor: Any, action: str, target: str, detail: dict[str, Any] | None = None) -> AuditEntry:
    """Append one audit entry. Assumes nothing; callers record after they acted."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    name = getattr(actor, "username", "") or "anonymous"
    return AuditEntry.objects.create(
        actor=user, actor_name=name, action=action, target=target, detail=detail or {}
    )


# Model-level rights per role. Row-level rights (which run) are object permissions that the
# services grant when rows are created; these say what kind of thing a role may do at all.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    "operator": ["preflight.add_changerequest", "preflight.add_preflightrun"],
    "approver": ["preflight.decide_preflightrun", "promote.add_approval", "promote.view_approval"],
    "auditor": ["evidence.view_bundle", "aegis_base.view_auditentry", "promote.view_approval"],
}


def roles_setup() -> dict[str, list[str]]:
    """Create/refresh the role groups (idempotent); returns the permissions each holds. Admin only."""
    granted: dict[str, list[str]] = {}
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".", 1)
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.set(wanted)  # set, not add: re-running converges on the table above
        granted[role] = sorted(f"{p.content_type.app_label}.{p.codename}" for p in wanted)
    return granted
