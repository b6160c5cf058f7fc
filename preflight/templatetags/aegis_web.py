"""Small template helpers for the AEGIS pages (no logic beyond presentation)."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def get(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.filter
def words(value: Any) -> str:
    return str(value or "").replace("_", " ")


@register.filter
def item_text(value: Any) -> str:
    """A diff entry as one readable line: strings stay, dicts become key=value pairs."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


@register.filter
def joinlines(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return str(value or "")
