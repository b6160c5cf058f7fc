"""Reads every app shares: who the asking user is, as the policy rules see them."""

from __future__ import annotations

from typing import Any

from aegis_base.core import policy


def actor_of(user: Any) -> policy.Actor:
    """The plain-data view of a Django user that the policy rules take."""
    if user is None or not getattr(user, "is_authenticated", False):
        return policy.Actor(username="", is_authenticated=False)
    names = getattr(user, "_aegis_groups", None)
    if names is None:
        names = frozenset(user.groups.values_list("name", flat=True))
        user._aegis_groups = names  # one query per request, not per check
    return policy.Actor(username=user.get_username(), groups=names, is_superuser=user.is_superuser)


def roles_of(user: Any) -> list[str]:
    actor = actor_of(user)
    return [r for r in policy.ROLES if actor.has_role(r)]
