"""The change file: what an operator (or the LLM) proposes, as a validated plain dict.

A change is config lines per device, entered in FRR configuration mode, plus the effects
the operator intends (`expect`). Every problem is a `ChangeError` whose message says what
to fix; nothing here touches a twin.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from twin.base import Topology

# Limits. A real change is a few dozen lines; these bound what a hostile or runaway
# proposal can make the pipeline parse, dry-run and diff.
MAX_FILE_BYTES = 256 * 1024
MAX_DEVICE_BYTES = 64 * 1024
MAX_DEVICE_LINES = 2000
MAX_LINE_CHARS = 512
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000

SOURCES = ("file", "form", "api", "llm", "agent")  # agent: the MCP server
TOP_KEYS = ("title", "description", "devices", "expect")
PREFIX_KEYS = ("prefixes_added", "prefixes_removed", "prefixes_changed")
SESSION_KEYS = ("sessions_removed", "sessions_added")
# Lists of prefixes: traffic to them may be dropped after the change (the data-plane diff).
RANGE_KEYS = ("traffic_dropped",)
# Failure scenario names (e.g. "link_down leaf3:eth2", or "*") whose lost redundancy is intended.
NAME_KEYS = ("redundancy_removed",)
EXPECT_KEYS = PREFIX_KEYS + SESSION_KEYS + RANGE_KEYS + NAME_KEYS
ALL_NODES = "*"  # in expect: the effect is intended on every node


class ChangeError(ValueError):
    """A change that cannot be used as given. The message says what to fix."""


def change_load(text: str, topology: Topology) -> dict[str, Any]:
    """Parse and validate a change file (YAML text) against the lab it targets."""
    if not isinstance(text, str):
        raise ChangeError("the change file must be text (YAML)")
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        raise ChangeError(
            f"the change file is larger than {MAX_FILE_BYTES // 1024} KiB; split it into smaller changes"
        )
    if not text.strip():
        raise ChangeError("the change file is empty; it needs at least `title` and `devices`")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ChangeError(f"the change file is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ChangeError(
            "the change file must be a YAML mapping with keys `title`, `devices` and optionally "
            "`description`, `expect`"
        )
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
    if unknown:
        raise ChangeError(
            f"unknown key(s) in the change file: {', '.join(unknown)}; allowed: {', '.join(TOP_KEYS)}"
        )
    return change_from_parts(
        title=data.get("title"),
        description=data.get("description"),
        devices=data.get("devices"),
        expect=data.get("expect"),
        source="file",
        topology=topology,
    )


def change_from_parts(
    *,
    title: Any,
    description: Any,
    devices: Any,
    expect: Any | None,
    source: str,
    topology: Topology | None = None,
) -> dict[str, Any]:
    """Build a validated change dict from its parts (form, API, LLM or file)."""
    if source not in SOURCES:
        raise ChangeError(f"unknown change source {source!r}; one of {', '.join(SOURCES)}")
    if not isinstance(title, str) or not title.strip():
        raise ChangeError("`title` is missing: give the change a one-line title")
    if len(title) > MAX_TITLE_CHARS:
        raise ChangeError(f"`title` is longer than {MAX_TITLE_CHARS} characters")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise ChangeError("`description` must be text")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise ChangeError(f"`description` is longer than {MAX_DESCRIPTION_CHARS} characters")
    clean_devices = _devices_validate(devices, topology)
    clean_expect = _expect_validate(expect, topology)
    return {
        "title": title.strip(),
        "description": description.strip(),
        "devices": clean_devices,
        "expect": clean_expect,
        "source": source,
    }


def _devices_validate(devices: Any, topology: Topology | None) -> dict[str, str]:
    if devices is None:
        raise ChangeError("`devices` is missing: map each device name to the config lines to enter")
    if not isinstance(devices, dict):
        raise ChangeError("`devices` must be a mapping of device name to config lines (a YAML block `|`)")
    if not devices:
        raise ChangeError("the change is empty: `devices` names no device")
    clean: dict[str, str] = {}
    for name, text in devices.items():
        name = str(name)
        if topology is not None:
            _device_check(name, topology)
        if isinstance(text, list) and all(isinstance(item, str) for item in text):
            text = "\n".join(text)
        if not isinstance(text, str):
            raise ChangeError(f"device {name}: the config must be text (use a YAML block `|`)")
        # Windows line endings from an operator's editor are harmless; a lone CR is not
        # (guards reject it as a control character).
        text = text.replace("\r\n", "\n")
        if not text.strip() or all(_is_comment(line) for line in text.splitlines()):
            raise ChangeError(f"device {name}: no config lines (only blanks or comments)")
        if len(text.encode("utf-8", "replace")) > MAX_DEVICE_BYTES:
            raise ChangeError(f"device {name}: more than {MAX_DEVICE_BYTES // 1024} KiB of config")
        if text.count("\n") + 1 > MAX_DEVICE_LINES:
            raise ChangeError(f"device {name}: more than {MAX_DEVICE_LINES} lines")
        clean[name] = text if text.endswith("\n") else text + "\n"
    return dict(sorted(clean.items()))


def _device_check(name: str, topology: Topology) -> None:
    node = topology.nodes.get(name)
    if node is None:
        raise ChangeError(
            f"device {name!r} is not in lab {topology.name!r}; its routers are: "
            f"{', '.join(topology.routers()) or '(none)'}"
        )
    if node.role != "frr":
        raise ChangeError(f"device {name!r} in lab {topology.name!r} is a {node.role}, not an FRR router")


def _is_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith(("!", "#"))


def _expect_validate(expect: Any, topology: Topology | None) -> dict[str, Any]:
    clean: dict[str, Any] = {key: {} for key in PREFIX_KEYS}
    clean.update({key: [] for key in SESSION_KEYS + RANGE_KEYS + NAME_KEYS})
    if expect is None:
        clean["declared"] = False
        return clean
    if not isinstance(expect, dict):
        raise ChangeError("`expect` must be a mapping with keys " + ", ".join(EXPECT_KEYS))
    unknown = sorted(str(k) for k in expect if k not in EXPECT_KEYS)
    if unknown:
        raise ChangeError(f"unknown key(s) in `expect`: {', '.join(unknown)}; allowed: {', '.join(EXPECT_KEYS)}")
    for key in PREFIX_KEYS:
        value = expect.get(key) or {}
        if not isinstance(value, dict):
            raise ChangeError(f"`expect.{key}` must map a node (or '*') to a list of prefixes")
        per_node: dict[str, list[str]] = {}
        for node, prefixes in value.items():
            node = str(node)
            if node != ALL_NODES and topology is not None and node not in topology.nodes:
                raise ChangeError(f"`expect.{key}`: node {node!r} is not in lab {topology.name!r}")
            if isinstance(prefixes, str):
                prefixes = [prefixes]
            if not isinstance(prefixes, list):
                raise ChangeError(f"`expect.{key}.{node}` must be a list of prefixes")
            per_node[node] = sorted({_prefix_check(p, f"expect.{key}.{node}") for p in prefixes})
        clean[key] = dict(sorted(per_node.items()))
    for key in SESSION_KEYS:
        value = expect.get(key) or []
        if not isinstance(value, list):
            raise ChangeError(f"`expect.{key}` must be a list of {{node: NAME, peer: ADDRESS-OR-ID}}")
        items = []
        for item in value:
            if not isinstance(item, dict) or set(item) != {"node", "peer"}:
                raise ChangeError(f"`expect.{key}`: each entry must be {{node: NAME, peer: ADDRESS-OR-ID}}")
            node, peer = str(item["node"]), str(item["peer"])
            if node != ALL_NODES and topology is not None and node not in topology.nodes:
                raise ChangeError(f"`expect.{key}`: node {node!r} is not in lab {topology.name!r}")
            items.append({"node": node, "peer": peer})
        clean[key] = sorted(items, key=lambda s: (s["node"], s["peer"]))
    for key in RANGE_KEYS:
        value = expect.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ChangeError(f"`expect.{key}` must be a list of prefixes")
        clean[key] = sorted({_prefix_check(p, f"expect.{key}") for p in value})
    for key in NAME_KEYS:
        value = expect.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in value):
            raise ChangeError(f"`expect.{key}` must be a list of failure scenario names such as "
                              "'link_down leaf3:eth2' or 'node_down spine1' ('*' for any)")
        clean[key] = sorted(set(value))
    clean["declared"] = True
    return clean


def _prefix_check(prefix: Any, where: str) -> str:
    try:
        return str(ipaddress.ip_network(str(prefix), strict=True))
    except ValueError as exc:
        raise ChangeError(f"`{where}`: {prefix!r} is not a prefix ({exc}); write it like 10.42.0.0/24") from None
