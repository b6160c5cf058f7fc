"""FRR's own config delta: frr-reload.py's parser and comparison, used in-process.

`frr-reload.py` (Debian's frr-pythontools) is what an operator runs to move a router to a new
config; the twin already uses it for rollback. Here its `Config` / `compare_context_objects`
are loaded as a module and fed texts we already have (a running config, a change), each
first marked by `vtysh -m` exactly as frr-reload marks a file: so "what changed between two
configs" is decided by FRR's tooling, context by context, with its own normalisations (e.g.
a prefix-list entry's host bits, trailing spaces), never by our own text diff.

`vtysh -m` only parses (it talks to no daemon), so this runs on the twin host outside any
namespace. Items are `(context, line)`: `context` the tuple of enclosing block headers
(`("router bgp 65003", "address-family ipv4 unicast")`), `line` a statement in it. A block
header itself is the item `(parent context, header)`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from .base import TwinError

FRR_RELOAD = Path("/usr/lib/frr/frr-reload.py")
Item = tuple[tuple[str, ...], str]


@lru_cache(maxsize=1)
def _frr_reload() -> ModuleType:
    if not FRR_RELOAD.exists():
        raise TwinError(f"{FRR_RELOAD} is missing: apt-get install frr-pythontools")
    spec = importlib.util.spec_from_file_location("aegis_frr_reload", FRR_RELOAD)
    if spec is None or spec.loader is None:
        raise TwinError(f"cannot load {FRR_RELOAD}")
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # its regexes are not raw strings (DeprecationWarning on import)
        warnings.simplefilter("ignore", DeprecationWarning)
        spec.loader.exec_module(module)
    return module


def _config(text: str) -> Any:
    """frr-reload's Config of `text`, loaded the way `Config.load_from_file` does it."""
    fr = _frr_reload()
    try:
        marked = subprocess.run(["vtysh", "-m", "-f", "-"], input=text, capture_output=True, text=True,
                                timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TwinError(f"vtysh -m failed: {exc}") from None
    cfg = fr.Config(None)
    for raw in marked.split("\n"):
        line = " ".join(raw.strip().split())
        if ":" in line:
            line = fr.get_normalized_mac_ip_line(line)
        cfg.lines.append(line)
    cfg.load_contexts()
    return cfg


def config_items(text: str) -> list[Item]:
    """Every block header and statement of `text`, in order, as frr-reload sees them."""
    items: list[Item] = []
    seen: set[tuple[str, ...]] = set()
    for keys, ctx in _config(text).contexts.items():
        for n in range(1, len(keys) + 1):
            if keys[:n] not in seen:
                seen.add(keys[:n])
                items.append((tuple(keys[: n - 1]), keys[n - 1]))
        for line in ctx.lines:
            items.append((tuple(keys), line.strip()))
    return items


def config_delta(before: str, after: str) -> dict[str, list[Item]]:
    """What changed from `before` to `after`, by frr-reload's comparison.

    {"added": items in `after` only, "removed": items in `before` only}. A whole block added or
    removed is its header item followed by its statements; frr-reload's "no ip route …" form for a
    removed static route is reported as the removed `ip route …` item.
    """
    fr = _frr_reload()
    to_add, to_del = fr.compare_context_objects(_config(after), _config(before))
    added: list[Item] = []
    removed: list[Item] = []
    for keys, line in to_add:
        keys = tuple(keys)
        if line is None:
            if len(keys) == 1 and keys[0].startswith("no ") and keys[0][3:].startswith(("ip route", "ipv6 route")):
                removed.append(((), keys[0][3:]))
            else:
                added.append((keys[:-1], keys[-1]))
        else:
            added.append((keys, line.strip()))
    for keys, line in to_del:
        keys = tuple(keys)
        removed.append((keys[:-1], keys[-1]) if line is None else (keys, line.strip()))
    return {"added": added, "removed": removed}


def contexts_of(text: str) -> set[tuple[str, ...]]:
    """The block headers present in a config (to tell whether a block a change opened exists)."""
    return {tuple(k) for k in _config(text).contexts}


def reload_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines frr-reload.py would enter to move a router from `before` to `after`.

    (lines to delete, lines to add), each already in context and negated, exactly as
    `frr-reload.py --test` prints them (its `compare_context_objects` + `lines_to_config`) and as
    the twin's `reload_config` reports them for a rollback; entered in that order they reach `after`.
    Runs on the host with `vtysh -m` only: no daemon, no namespace.
    """
    fr = _frr_reload()
    to_add, to_del = fr.compare_context_objects(_config(after), _config(before))
    delete = [ln for keys, line in to_del if line != "!" for ln in fr.lines_to_config(keys, line, True)]
    add = [ln for keys, line in to_add if line != "!" for ln in fr.lines_to_config(keys, line, False)]
    return delete, add
