"""Desired state as input: the intended full config of each changed router -> the change to verify.

Teams keep configs in git and edit whole files; AEGIS verifies lines. Between the two sits
frr-reload.py's own comparison (`twin.frrdelta.reload_lines`, the same logic the twin uses for
rollback deltas): for each router, the lines frr-reload would enter to move the lab's baseline
config (the lab's `frr.conf`, as the twin boots it) to the desired one. Those lines become the
change's `devices`, so they pass the same guards, static checks and twin as any hand-written
change; the result records the desired files' digests (`change.desired`).

The desired text is hostile input too, and parsing it already runs `vtysh -m` on the host, so it
is checked before parsing: size, emptiness, control characters, non-ASCII look-alikes and line
length on every line; the guard's denylist on every line the lab's own baseline does not already carry (a full frr.conf has
`service integrated-vtysh-config` and `line vty`, which no change may add, but which are then
unchanged and never entered). The computed delta is checked again by `guards.precheck`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from preflight.core.change import (
    MAX_DEVICE_BYTES,
    MAX_DEVICE_LINES,
    MAX_LINE_CHARS,
    ChangeError,
    _device_check,
    change_from_parts,
)
from preflight.core.guards import GuardRejection, _control_chars, _denied, _non_ascii, precheck
from twin.base import Topology
from twin.frrdelta import reload_lines


def desired_read(desired_dir: str | Path, topology: Topology) -> dict[str, str]:
    """Read `DIR/NODE/frr.conf` or `DIR/NODE.conf` for the lab's routers found there."""
    root = Path(desired_dir)
    if not root.is_dir():
        raise ChangeError(f"--desired {root}: not a folder (it holds NODE/frr.conf or NODE.conf per router)")
    found: dict[str, str] = {}
    inside = root.resolve()
    for node in topology.routers():
        for path in (root / node / "frr.conf", root / f"{node}.conf"):
            if path.is_file():
                # A link out of the folder (r3.conf -> /etc/shadow) would read a host file into the
                # change and quote it in refusals and the evidence: only files in the folder count.
                if not path.resolve().is_relative_to(inside):
                    raise ChangeError(f"{path}: links outside {root} (to {path.resolve()}); desired configs "
                                      "must be files inside the folder")
                if node in found:
                    raise ChangeError(f"{root}: both {node}/frr.conf and {node}.conf exist; keep one")
                if path.stat().st_size > MAX_DEVICE_BYTES:
                    raise ChangeError(f"{path}: more than {MAX_DEVICE_BYTES // 1024} KiB")
                found[node] = path.read_text(errors="replace")
    if not found:
        raise ChangeError(f"{root}: no desired config for any router of lab {topology.name!r} "
                          f"(expected NODE/frr.conf or NODE.conf for one of {', '.join(topology.routers())})")
    return found


def baseline_config(topology: Topology, node: str) -> str:
    """The config the twin boots `node` with (the lab's frr.conf)."""
    return topology.nodes[node].frr_conf or ""


def desired_check(node: str, text: str, baseline: str) -> None:
    """Refuse desired config text that must not even be parsed; see the module docstring."""
    if not isinstance(text, str):
        raise GuardRejection("desired config must be text", device=node)
    if not text.strip():
        # frr-reload would delete every line of the router: far more likely an empty upload than a wish.
        raise GuardRejection("desired config is empty: give the router's whole intended frr.conf "
                             "(an empty one would remove every line)", device=node)
    if len(text.encode("utf-8", "replace")) > MAX_DEVICE_BYTES:
        raise GuardRejection(f"desired config larger than {MAX_DEVICE_BYTES // 1024} KiB", device=node)
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_DEVICE_LINES + 1:
        raise GuardRejection(f"desired config longer than {MAX_DEVICE_LINES} lines", device=node)
    known = {ln.strip() for ln in baseline.split("\n")}
    for line_no, raw in enumerate(lines, start=1):
        # Look-alike letters too (Cyrillic `і` in `wrіte`): frr-reload's parser drops such a line
        # silently, which read as "nothing to change" instead of a refusal.
        reason = _control_chars(raw) or _non_ascii(raw)
        if reason:
            raise GuardRejection(reason, device=node, line_no=line_no, line=raw)
        if len(raw) > MAX_LINE_CHARS:
            raise GuardRejection(f"line longer than {MAX_LINE_CHARS} characters", device=node,
                                 line_no=line_no, line=raw[:80] + "…")
        stripped = raw.strip()
        # `end` closes a saved running-config; frr-reload's parser drops it, it is never entered.
        if not stripped or stripped.startswith(("!", "#")) or stripped == "end" or stripped in known:
            continue
        reason = _denied(stripped.lower().split(), stripped)
        if reason:
            raise GuardRejection(reason, device=node, line_no=line_no, line=raw)


def desired_delta(baseline: str, desired: str) -> dict[str, list[str]]:
    """frr-reload's lines from `baseline` to `desired`: {"delete", "add", "lines"} (lines = delete + add)."""
    to_delete, to_add = reload_lines(baseline, desired)
    delete = [ln.rstrip() for ln in to_delete]
    add = [ln.rstrip() for ln in to_add]
    return {"delete": delete, "add": add, "lines": delete + add}


def desired_deltas(topology: Topology, desired: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Check and diff every router's desired config against the lab's baseline (guards first)."""
    if not isinstance(desired, dict) or not desired:
        raise ChangeError("`desired` names no router: map each changed router to its full intended config")
    out: dict[str, dict[str, list[str]]] = {}
    for node, text in sorted(desired.items()):
        node = str(node)
        try:
            _device_check(node, topology)
        except ChangeError as exc:
            raise GuardRejection(str(exc), device=node) from None
        baseline = baseline_config(topology, node)
        desired_check(node, text, baseline)
        out[node] = desired_delta(baseline, text.replace("\r\n", "\n"))
    return out


def change_from_desired(topology: Topology, desired: dict[str, str], *, title: str | None = None,
                        description: str = "", expect: dict[str, Any] | None = None,
                        source: str = "file", origin: str = "") -> dict[str, Any]:
    """The change that moves the lab from its baseline to `desired`, checked like any change.

    Routers whose desired config equals the baseline (frr-reload finds no line) are left out and
    listed in `change.desired.unchanged`; if every router is unchanged there is nothing to verify.
    """
    deltas = desired_deltas(topology, desired)
    devices = {node: "\n".join(d["lines"]) + "\n" for node, d in deltas.items() if d["lines"]}
    unchanged = sorted(node for node, d in deltas.items() if not d["lines"])
    if not devices:
        raise ChangeError("the desired configs equal the lab's baseline for every router "
                          f"({', '.join(unchanged)}): frr-reload finds nothing to change")
    if title is None:
        title = f"desired state of {', '.join(devices)}" + (f" ({origin})" if origin else "")
    change = change_from_parts(title=title, description=description, devices=devices, expect=expect,
                               source=source, topology=topology)
    precheck(change, topology)
    change["desired"] = {
        "method": "frr-reload",
        "origin": origin,
        "nodes": {node: {"sha256": hashlib.sha256(desired[node].encode()).hexdigest(),
                         "delete": deltas[node]["delete"], "add": deltas[node]["add"]}
                  for node in devices},
        "unchanged": unchanged,
    }
    return change


def delta_text(change: dict[str, Any]) -> str:
    """The computed delta as an operator reads it before the run (per router, frr-reload's two sections)."""
    out: list[str] = []
    for node, info in (change.get("desired") or {}).get("nodes", {}).items():
        out.append(f"{node}: frr-reload delta from the lab's baseline")
        if info["delete"]:
            out += ["  lines to delete:"] + [f"    {ln}" for ln in info["delete"]]
        if info["add"]:
            out += ["  lines to add:"] + [f"    {ln}" for ln in info["add"]]
    for node in (change.get("desired") or {}).get("unchanged", []):
        out.append(f"{node}: unchanged (desired config equals the baseline)")
    return "\n".join(out)
