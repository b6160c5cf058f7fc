"""Small template helpers for the AEGIS pages (no logic beyond presentation)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def get(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def words(value: Any) -> str:
    return str(value or "").replace("_", " ")


@register.filter
def item_text(value: Any) -> str:
    """A diff entry as one readable line: strings stay, dicts become key=value pairs."""
    if isinstance(value, dict):
        if "message" in value:  # findings and undeclared effects carry their own sentence
            return str(value["message"])
        if "prefix" in value:  # a route: prefix, protocol, next hops
            hops = value.get("nexthops") or []
            via = f" via {', '.join(str(h) for h in hops)}" if hops else ""
            return f"{value['prefix']} {value.get('protocol', '')}{via}".strip()
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


@register.filter
def joinlines(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return str(value or "")


@register.filter
def invariant_text(value: Any) -> str:
    """{"must_reach": {"from": "r1", "to": "10.255.0.3"}} -> "must reach: from r1, to 10.255.0.3"."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, spec),) = value.items()
        if isinstance(spec, dict):
            return f"{words(kind)}: " + ", ".join(f"{k} {v}" for k, v in spec.items())
        return f"{words(kind)}: {spec}"
    if isinstance(value, dict) and "kind" in value:
        spec = value.get("spec") or {k: v for k, v in value.items() if k != "kind"}
        return f"{words(value['kind'])}: " + ", ".join(f"{k} {v}" for k, v in spec.items())
    return item_text(value)


@register.simple_tag
def aegis_roles(user: Any) -> list[str]:
    """The user's AEGIS roles (one group query per request; the nav needs no permission lookups)."""
    from preflight.selectors import roles_of

    return roles_of(user)
