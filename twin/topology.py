"""Load a containerlab topology (`*.clab.yml`) into a `Topology`.

What a team's existing FRR lab looks like (containerlab's format, see ../shared/notes/TWIN.md §1):
`name`, `topology.defaults/kinds/groups/nodes/links`, routers of `kind: linux` whose `binds`
put `frr.conf` and `daemons` at `/etc/frr/`, `kind: bridge` LAN segments, links in brief or
extended form, `exec:` lines, `${VAR:=default}` substitution.

Loading is strict and safe: safe YAML only, size limits, Linux interface-name rules, and bind
paths must stay inside the lab folder. Every error is a `TopologyError` whose message names the
file, line (where YAML tells us) and the field to fix. Fields a twin cannot honour but that do
not change routing (`image`, `mgmt`, `ports`, ...) become warnings on `Topology.warnings`.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from .base import Endpoint, Link, Node, Topology, TopologyError

MAX_TOPOLOGY_BYTES = 1_000_000  # a 500-node lab is ~60 kB; anything near 1 MB is not a lab
MAX_CONFIG_BYTES = 2_000_000  # one router's frr.conf
MAX_NODES = 1000
MAX_LINKS = 5000
MAX_YAML_NODES = 500_000  # guards alias expansion ("billion laughs") while mapping lines

# FRR daemons this twin knows how to start (binary name in /usr/lib/frr).
KNOWN_DAEMONS = (
    "zebra", "staticd", "bfdd", "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "fabricd",
    "pimd", "pim6d", "ldpd", "nhrpd", "eigrpd", "babeld", "sharpd", "pbrd", "vrrpd", "pathd",
)
ALWAYS_DAEMONS = ("zebra", "staticd")
# `router X` / other config lines that need a daemon, for labs that bind no daemons file.
_CONFIG_DAEMON_HINTS = (
    (re.compile(r"^router bgp\b", re.M), "bgpd"),
    (re.compile(r"^router ospf\b", re.M), "ospfd"),
    (re.compile(r"^router ospf6\b", re.M), "ospf6d"),
    (re.compile(r"^router rip\b", re.M), "ripd"),
    (re.compile(r"^router ripng\b", re.M), "ripngd"),
    (re.compile(r"^router isis\b", re.M), "isisd"),
    (re.compile(r"^router openfabric\b", re.M), "fabricd"),
    (re.compile(r"^router eigrp\b", re.M), "eigrpd"),
    (re.compile(r"^router babel\b", re.M), "babeld"),
    (re.compile(r"^bfd\b|\bbfd\b", re.M), "bfdd"),
    (re.compile(r"^\s*ip ospf area\b", re.M), "ospfd"),
    (re.compile(r"^\s*ipv6 ospf6 area\b", re.M), "ospf6d"),
    (re.compile(r"^\s*ip router isis\b", re.M), "isisd"),
    (re.compile(r"^\s*ip pim\b", re.M), "pimd"),
    (re.compile(r"^mpls ldp\b", re.M), "ldpd"),
    (re.compile(r"^pbr-map\b", re.M), "pbrd"),
)

NODE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*$")
MAX_NODE_NAME = 40
# Linux interface names: 1..15 bytes (IFNAMSIZ-1), no '/', ':' or whitespace. We are a bit
# stricter (no leading '-' or '.') so a name can never be read as an option or a path.
IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,14}$")
LAB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[=-])([^}]*))?\}")

# Node fields that a namespace twin cannot honour. They do not change routing, so they are
# recorded as warnings rather than refused.
_IGNORED_NODE_FIELDS = {
    "image": None,  # handled separately (version skew note)
    "ports": "nothing in a twin is published on the host",
    "mgmt-ipv4": "twin nodes have no management network",
    "mgmt-ipv6": "twin nodes have no management network",
    "env": "no container environment",
    "env-files": "no container environment",
    "startup-delay": "nodes start together",
    "stages": "nodes start together",
    "wait-for": "nodes start together",
    "cpu": "no cgroup limits",
    "memory": "no cgroup limits",
    "cpu-set": "no cgroup limits",
    "healthcheck": "no container health checks",
    "image-pull-policy": "no images are pulled",
    "restart-policy": "nodes are not restarted",
    "user": "FRR runs as the host's frr user",
    "entrypoint": "FRR is started by the twin",
    "cmd": "FRR is started by the twin",
    "cap-add": "not a container",
    "privileged": "not a container",
    "dns": "no name service in a twin",
    "certificate": "not used",
    "aliases": "not used",
    "shm-size": "not a container",
    "runtime": "not a container",
    "security-opts": "not a container",
    "tmpfs": "not a container",
    "devices": "not a container",
    "volumes": "not a container",
    "auto-remove": "not a container",
    "cgroupns-mode": "not a container",
    "cgroup-parent": "not a container",
    "pid-mode": "not a container",
    "hostname": "the hostname is the node name",
    "license": "not used by FRR nodes",
    "type": "not used by FRR nodes",
    "startup-config": "FRR nodes load the frr.conf bound at /etc/frr/frr.conf",
    "enforce-startup-config": "FRR nodes load the frr.conf bound at /etc/frr/frr.conf",
    "suppress-startup-config": "FRR nodes load the frr.conf bound at /etc/frr/frr.conf",
    "link-apply-mode": "links are created by the twin",
    "extras": "not used by FRR nodes",
    "config": "not used by FRR nodes",
    "components": "not used by FRR nodes",
    "credentials": "not used by FRR nodes",
    "network-mode": None,  # refused unless absent
}
_KNOWN_NODE_FIELDS = set(_IGNORED_NODE_FIELDS) | {"kind", "group", "binds", "exec", "labels", "sysctls"}
_TOP_LEVEL_FIELDS = {"name", "prefix", "mgmt", "topology", "settings", "debug"}
_SUPPORTED_KINDS = {"linux", "bridge"}


# --------------------------------------------------------------------------- YAML with lines


class _Lines:
    """Maps a path in the loaded document (e.g. ("topology", "links", 3)) to its 1-based line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.by_path: dict[tuple[Any, ...], int] = {}

    def at(self, *path: Any) -> str:
        """'file:line' for the deepest part of `path` that has a known line."""
        p = tuple(path)
        while p:
            if p in self.by_path:
                return f"{self.source}:{self.by_path[p]}"
            p = p[:-1]
        return self.source

    def error(self, path: tuple[Any, ...], message: str) -> TopologyError:
        return TopologyError(f"{self.at(*path)}: {_field(path)}: {message}")


def _field(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _map_lines(root: yaml.Node, lines: _Lines) -> None:
    """Record the line of every mapping value and sequence item; refuse duplicate keys."""
    budget = [MAX_YAML_NODES]

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise TopologyError(f"{lines.source}: the YAML document is too large or expands too far (aliases)")
        lines.by_path.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is None or key == "<<":
                    continue
                if key in seen:
                    raise TopologyError(
                        f"{lines.source}:{key_node.start_mark.line + 1}: {_field(path + (key,))}: "
                        f"duplicate key {key!r} (YAML would silently keep only the last one)"
                    )
                seen.add(key)
                lines.by_path[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    walk(root, ())


def _substitute_env(text: str, source: str, env: dict[str, str]) -> str:
    """containerlab's `${VAR}`, `${VAR:=default}` (and `${VAR:-default}`) substitution."""

    def repl(m: re.Match[str]) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if value is not None and (value != "" or not (op or "").startswith(":")):
            return value
        if op is not None:
            return default or ""
        line = text.count("\n", 0, m.start()) + 1
        raise TopologyError(
            f"{source}:{line}: variable ${{{name}}} is not set; set it in the environment "
            f"or give a default as ${{{name}:=value}}"
        )

    return _ENV_RE.sub(repl, text)


# --------------------------------------------------------------------------- locating the file


def find_topology_file(lab: str | Path) -> Path:
    """The single `*.clab.yml` in a lab folder, or the given file itself."""
    path = Path(lab)
    if not path.exists():
        raise TopologyError(f"{path}: no such lab folder or topology file")
    if path.is_file():
        if path.name.endswith((".gotmpl", ".tmpl")):
            raise TopologyError(
                f"{path}: go-template topologies are not supported; render it with "
                "`containerlab ... --vars` first and point AEGIS at the resulting .clab.yml"
            )
        return path
    found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith((".clab.yml", ".clab.yaml")))
    if not found:
        templates = sorted(p.name for p in path.iterdir() if p.name.endswith(".gotmpl"))
        if templates:
            raise TopologyError(
                f"{path}: only a go-template topology ({', '.join(templates)}) is here; go-template "
                "topologies are not supported, render it to a .clab.yml first"
            )
        raise TopologyError(f"{path}: no *.clab.yml topology file in this folder")
    if len(found) > 1:
        # containerlab itself wants `-t` here; we accept the one named after the folder.
        named = [p for p in found if p.name in (f"{path.resolve().name}.clab.yml", f"{path.resolve().name}.clab.yaml")]
        if len(named) == 1:
            return named[0]
        raise TopologyError(
            f"{path}: more than one topology file ({', '.join(p.name for p in found)}); "
            "pass the path of the one to use"
        )
    return found[0]


# --------------------------------------------------------------------------- the loader


def load_lab(lab_dir: str | Path, env: dict[str, str] | None = None) -> Topology:
    """Parse and validate a containerlab lab (a folder with one `*.clab.yml`, or that file)."""
    topo_file = find_topology_file(lab_dir)
    source = str(topo_file)
    size = topo_file.stat().st_size
    if size > MAX_TOPOLOGY_BYTES:
        raise TopologyError(f"{source}: file is {size} bytes; the limit is {MAX_TOPOLOGY_BYTES}")
    try:
        raw = topo_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    text = _substitute_env(raw, source, dict(os.environ) if env is None else env)
    lines = _Lines(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _map_lines(root, lines)
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise TopologyError(f"{where}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise TopologyError(f"{source}: not valid YAML: {exc}") from None
    return _build(doc, lines, topo_file.parent.resolve())


def _need_map(value: Any, path: tuple[Any, ...], lines: _Lines, what: str = "a mapping") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise lines.error(path, f"must be {what}, not {type(value).__name__}")
    return value


def _need_list(value: Any, path: tuple[Any, ...], lines: _Lines) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise lines.error(path, f"must be a list, not {type(value).__name__}")
    return value


def _build(doc: Any, lines: _Lines, lab_root: Path) -> Topology:
    warnings: list[str] = []
    if not isinstance(doc, dict):
        raise TopologyError(f"{lines.source}: a topology file is a mapping with `name` and `topology`")
    for key in doc:
        if key not in _TOP_LEVEL_FIELDS:
            raise lines.error((key,), f"unknown top-level field (expected one of {sorted(_TOP_LEVEL_FIELDS)})")
    name = doc.get("name")
    if not isinstance(name, str) or not LAB_NAME_RE.match(name):
        raise lines.error(("name",), "required: letters, digits, '_', '-', '.', at most 63 characters")
    if "mgmt" in doc:
        warnings.append("mgmt: ignored (twin nodes have no management network and no link to the host)")
    for key in ("settings", "prefix", "debug"):
        if key in doc:
            warnings.append(f"{key}: ignored (not used by a namespace twin)")
    topo = _need_map(doc.get("topology"), ("topology",), lines)
    if not topo:
        raise lines.error(("topology",), "required: a mapping with `nodes` and `links`")
    for key in topo:
        if key not in ("defaults", "kinds", "groups", "nodes", "links"):
            raise lines.error(("topology", key), "unknown field (expected defaults, kinds, groups, nodes, links)")
    defaults = _need_map(topo.get("defaults"), ("topology", "defaults"), lines)
    kinds = _need_map(topo.get("kinds"), ("topology", "kinds"), lines)
    groups = _need_map(topo.get("groups"), ("topology", "groups"), lines)
    raw_nodes = _need_map(topo.get("nodes"), ("topology", "nodes"), lines)
    if not raw_nodes:
        raise lines.error(("topology", "nodes"), "a lab needs at least one node")
    if len(raw_nodes) > MAX_NODES:
        raise lines.error(("topology", "nodes"), f"{len(raw_nodes)} nodes; the limit is {MAX_NODES}")

    nodes: dict[str, Node] = {}
    images: dict[str, list[str]] = {}
    for node_name, raw in raw_nodes.items():
        path = ("topology", "nodes", node_name)
        node_name = str(node_name)
        if not NODE_NAME_RE.match(node_name) or len(node_name) > MAX_NODE_NAME:
            raise lines.error(path, f"node name {node_name!r}: letters, digits, '_' and inner '-', "
                                    f"at most {MAX_NODE_NAME} characters")
        node_def = _need_map(raw, path, lines)
        node = _resolve_node(node_name, node_def, defaults, kinds, groups, lines, lab_root, warnings)
        nodes[node_name] = node
        if node.image and node.role != "bridge":
            images.setdefault((node.role, node.image), []).append(node_name)
    for (role, image), users in sorted(images.items()):
        what = "they run the host's FRR" if role == "frr" else "plain namespaces that run only their exec lines"
        warnings.append(f"image {image} (nodes {', '.join(users)}): not pulled; {what}")

    raw_links = _need_list(topo.get("links"), ("topology", "links"), lines)
    if len(raw_links) > MAX_LINKS:
        raise lines.error(("topology", "links"), f"{len(raw_links)} links; the limit is {MAX_LINKS}")
    links: list[Link] = []
    used: dict[tuple[str, str], str] = {}
    for i, raw_link in enumerate(raw_links):
        links.append(_parse_link(i, raw_link, nodes, used, lines))
    return Topology(name=name, nodes=nodes, links=links, source=lines.source, warnings=warnings)


def _merge_levels(
    node_name: str, node_def: dict[str, Any], defaults: dict[str, Any], kinds: dict[str, Any],
    groups: dict[str, Any], lines: _Lines,
) -> tuple[dict[str, Any], list[tuple[tuple[Any, ...], dict[str, Any]]]]:
    """containerlab's inheritance: node -> group -> kind -> defaults (most specific wins)."""
    npath = ("topology", "nodes", node_name)
    group_name = node_def.get("group")
    group: dict[str, Any] = {}
    if group_name is not None:
        if not isinstance(group_name, str) or group_name not in groups:
            raise lines.error(npath + ("group",), f"unknown group {group_name!r} (define it under topology.groups)")
        group = _need_map(groups[group_name], ("topology", "groups", group_name), lines)
    kind = node_def.get("kind") or group.get("kind") or defaults.get("kind")
    kind_def: dict[str, Any] = {}
    if isinstance(kind, str) and kind in kinds:
        kind_def = _need_map(kinds[kind], ("topology", "kinds", kind), lines)
    levels = [  # least specific first
        (("topology", "defaults"), defaults),
        (("topology", "kinds", kind), kind_def),
        (("topology", "groups", group_name), group),
        (npath, node_def),
    ]
    merged: dict[str, Any] = {}
    for _, level in levels:
        for key, value in level.items():
            if key in ("labels", "sysctls", "env") and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    merged["kind"] = kind
    return merged, levels


def _resolve_node(
    node_name: str, node_def: dict[str, Any], defaults: dict[str, Any], kinds: dict[str, Any],
    groups: dict[str, Any], lines: _Lines, lab_root: Path, warnings: list[str],
) -> Node:
    npath = ("topology", "nodes", node_name)
    merged, levels = _merge_levels(node_name, node_def, defaults, kinds, groups, lines)
    kind = merged["kind"]
    if kind is None:
        raise lines.error(npath + ("kind",), "no kind (set `kind: linux` for an FRR router or `kind: bridge`)")
    if kind not in _SUPPORTED_KINDS:
        raise lines.error(
            npath + ("kind",),
            f"kind {kind!r} is not supported: AEGIS twins run FRR only (kind linux with frr.conf bound at "
            "/etc/frr/frr.conf, plain kind linux hosts, and kind bridge LAN segments)",
        )
    for key in merged:
        if key not in _KNOWN_NODE_FIELDS:
            raise lines.error(npath + (key,), "unknown node field")
    if merged.get("network-mode") not in (None, "", "bridge", "none"):
        raise lines.error(npath + ("network-mode",), "network-mode host/container is not supported: "
                                                      "a twin node never shares the host's network")
    for key, why in _IGNORED_NODE_FIELDS.items():
        if key in merged and why is not None and key in node_def:
            warnings.append(f"node {node_name}: {key} ignored ({why})")
    labels = {str(k): str(v) for k, v in _need_map(merged.get("labels"), npath + ("labels",), lines).items()}
    image = merged.get("image")
    image = str(image) if image is not None else None

    if kind == "bridge":
        for key in ("binds", "exec"):
            if merged.get(key):
                raise lines.error(npath + (key,), f"a bridge node has no {key}")
        if len(node_name) > 15:
            raise lines.error(npath, "a bridge name is a Linux interface name: at most 15 characters")
        return Node(name=node_name, role="bridge", labels=labels, image=image)

    frr_conf, conf_rel, daemons_text = _resolve_binds(node_name, levels, lines, lab_root, warnings)
    exec_lines = _filter_exec(node_name, merged.get("exec"), npath, lines, warnings)
    for key, value in _need_map(merged.get("sysctls"), npath + ("sysctls",), lines).items():
        exec_lines.append(f"sysctl -w {key}={value}")
        if not _sysctl_allowed(f"{key}={value}"):
            exec_lines.pop()
            warnings.append(f"node {node_name}: sysctl {key} refused (only net.ipv4.* / net.ipv6.* / "
                            "net.mpls.* run inside a twin node)")
    if frr_conf is None:
        if daemons_text is not None:
            raise lines.error(npath + ("binds",), "binds a daemons file but no frr.conf at /etc/frr/frr.conf")
        return Node(name=node_name, role="host", exec=exec_lines, labels=labels, image=image)
    daemons = _daemons_from(daemons_text, frr_conf, node_name, warnings)
    return Node(name=node_name, role="frr", frr_conf=frr_conf, daemons=daemons, exec=exec_lines,
                image=image, labels=labels, config_path=conf_rel)


def _resolve_binds(
    node_name: str, levels: list[tuple[tuple[Any, ...], dict[str, Any]]], lines: _Lines, lab_root: Path,
    warnings: list[str],
) -> tuple[str | None, str | None, str | None]:
    """Merged binds (lower level wins per container path) -> (frr.conf text, its path, daemons text)."""
    by_target: dict[str, tuple[Path, tuple[Any, ...]]] = {}
    magic = {
        "__clabNodeName__": node_name, "__clabNodeDir__": f"clab-lab/{node_name}",
        "__clabDir__": "clab-lab", "__clabLabName__": "lab",
    }
    for level_path, level in levels:
        for j, bind in enumerate(_need_list(level.get("binds"), level_path + ("binds",), lines)):
            bpath = level_path + ("binds", j)
            if not isinstance(bind, str) or bind.count(":") not in (1, 2):
                raise lines.error(bpath, f"a bind is 'host-path:container-path[:ro]', got {bind!r}")
            for key, value in magic.items():
                bind = bind.replace(key, value)
            host, target = bind.split(":")[:2]
            if not target.startswith("/"):
                raise lines.error(bpath, f"container path {target!r} must be absolute")
            host_path = Path(host) if os.path.isabs(host) else lab_root / host
            resolved = host_path.resolve()
            if resolved != lab_root and lab_root not in resolved.parents:
                raise lines.error(bpath, f"bind source {host!r} resolves outside the lab folder; "
                                         "copy the file into the lab folder")
            by_target[os.path.normpath(target)] = (resolved, bpath)
    conf_path = daemons_path = None
    for target, (resolved, bpath) in by_target.items():
        if target == "/etc/frr/frr.conf":
            conf_path = (resolved, bpath)
        elif target == "/etc/frr/daemons":
            daemons_path = (resolved, bpath)
        elif target == "/etc/frr":
            if not resolved.is_dir():
                raise lines.error(bpath, f"{resolved} is bound to /etc/frr but is not a folder")
            if (resolved / "frr.conf").exists() and conf_path is None:
                conf_path = (resolved / "frr.conf", bpath)
            if (resolved / "daemons").exists() and daemons_path is None:
                daemons_path = (resolved / "daemons", bpath)
        elif target == "/etc/frr/vtysh.conf":
            warnings.append(f"node {node_name}: bind {target} ignored (the twin writes vtysh.conf with "
                            "service integrated-vtysh-config)")
        else:
            warnings.append(f"node {node_name}: bind to {target} ignored (only /etc/frr/frr.conf and "
                            "/etc/frr/daemons are used)")
    frr_conf = daemons = None
    conf_rel = None
    if conf_path is not None:
        frr_conf = _read_bound(conf_path[0], conf_path[1], lines)
        conf_rel = str(conf_path[0].relative_to(lab_root))
    if daemons_path is not None:
        daemons = _read_bound(daemons_path[0], daemons_path[1], lines)
    return frr_conf, conf_rel, daemons


def _read_bound(path: Path, bpath: tuple[Any, ...], lines: _Lines) -> str:
    if not path.is_file():
        raise lines.error(bpath, f"bind source {path} does not exist or is not a file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise lines.error(bpath, f"{path} is {size} bytes; the limit is {MAX_CONFIG_BYTES}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise lines.error(bpath, f"{path} is not UTF-8 text") from None


def _daemons_from(text: str | None, frr_conf: str, node_name: str, warnings: list[str]) -> list[str]:
    """Daemons to start: from FRR's daemons file (`bgpd=yes`), or guessed from frr.conf."""
    wanted: list[str] = list(ALWAYS_DAEMONS)
    if text is None:
        for pattern, daemon in _CONFIG_DAEMON_HINTS:
            if pattern.search(frr_conf) and daemon not in wanted:
                wanted.append(daemon)
        warnings.append(f"node {node_name}: no daemons file bound; starting {', '.join(wanted)} "
                        "(guessed from frr.conf)")
        return wanted
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^([a-z0-9]+)\s*=\s*\"?(yes|no)\"?\s*$", line)
        if not m or m.group(2) != "yes":
            continue
        daemon = m.group(1)
        if daemon not in KNOWN_DAEMONS:
            warnings.append(f"node {node_name}: daemons file enables unknown daemon {daemon!r}; ignored")
        elif daemon not in wanted:
            wanted.append(daemon)
    return wanted


# --------------------------------------------------------------------------- exec lines

_SHELL_META = re.compile(r"[;&|`$<>(){}\\\n]")
_IP_GLOBAL_REFUSED = {"-n", "-netns", "--netns", "-b", "-batch", "--batch", "-all", "--all", "-force"}


def _sysctl_allowed(assignment: str) -> bool:
    key, sep, _ = assignment.partition("=")
    return bool(sep) and re.match(r"^net\.(ipv4|ipv6|mpls)\.[A-Za-z0-9_./-]+$", key) is not None


def exec_refusal(command: str) -> str | None:
    """Why an `exec:` line may not run inside a twin node, or None when it may."""
    if _SHELL_META.search(command):
        return "shell syntax (;, |, $, redirections, ...) is not run"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"cannot be parsed ({exc})"
    if not argv:
        return "empty command"
    prog = os.path.basename(argv[0])
    if prog == "ip":
        if any(a in _IP_GLOBAL_REFUSED for a in argv[1:]) or "netns" in argv[1:]:
            return "`ip` may not address other network namespaces"
        return None
    if prog == "sysctl":
        args = [a for a in argv[1:] if a not in ("-w", "-q", "-e")]
        if not args or any(a.startswith("-") or not _sysctl_allowed(a) for a in args):
            return "only `sysctl -w net.ipv4.*|net.ipv6.*|net.mpls.*=VALUE` runs inside a twin node"
        return None
    return "only `ip ...` and `sysctl ...` commands run inside a twin node"


def _filter_exec(
    node_name: str, value: Any, npath: tuple[Any, ...], lines: _Lines, warnings: list[str]
) -> list[str]:
    kept: list[str] = []
    for i, command in enumerate(_need_list(value, npath + ("exec",), lines)):
        if not isinstance(command, str):
            raise lines.error(npath + ("exec", i), "an exec entry is a command string")
        command = command.strip()
        why = exec_refusal(command)
        if why is None:
            kept.append(command)
        else:
            warnings.append(f"node {node_name}: exec {command!r} refused and not run: {why}")
    return kept


# --------------------------------------------------------------------------- links


def _check_ifname(name: Any, path: tuple[Any, ...], lines: _Lines) -> str:
    if not isinstance(name, str) or not IFNAME_RE.match(name) or name in ("lo", ".", ".."):
        raise lines.error(path, f"interface name {name!r} is not a valid Linux interface name "
                                "(1-15 characters: letters, digits, '_', '.', '-', '@', '+'; not 'lo')")
    return name


def _parse_link(
    i: int, raw: Any, nodes: dict[str, Node], used: dict[tuple[str, str], str], lines: _Lines
) -> Link:
    lpath = ("topology", "links", i)
    link = _need_map(raw, lpath, lines)
    ltype = link.get("type")
    if ltype is not None and ltype != "veth":
        if ltype in ("vxlan", "vxlan-stitch"):
            why = "vxlan links reach other hosts; a twin has no link outside its own namespaces"
        elif ltype in ("host", "mgmt-net", "macvlan"):
            why = f"{ltype} links attach to the host's network, which a twin never does"
        else:
            why = "only veth links (brief `endpoints: [a:x, b:y]` or extended `type: veth`) are supported"
        raise lines.error(lpath + ("type",), f"link type {ltype!r} is not supported: {why}")
    endpoints = _need_list(link.get("endpoints"), lpath + ("endpoints",), lines)
    if len(endpoints) != 2:
        raise lines.error(lpath + ("endpoints",), f"a link has exactly two endpoints, got {len(endpoints)}")
    mtu = link.get("mtu")
    if mtu is not None and (not isinstance(mtu, int) or not 68 <= mtu <= 65535):
        raise lines.error(lpath + ("mtu",), f"mtu must be an integer 68..65535, got {mtu!r}")
    brief_v4 = _need_list(link.get("ipv4"), lpath + ("ipv4",), lines)
    brief_v6 = _need_list(link.get("ipv6"), lpath + ("ipv6",), lines)
    eps: list[Endpoint] = []
    for j, ep in enumerate(endpoints):
        epath = lpath + ("endpoints", j)
        mac = ipv4 = ipv6 = None
        if isinstance(ep, str):
            if ep.count(":") != 1:
                raise lines.error(epath, f"an endpoint is 'node:interface', got {ep!r}")
            node, iface = ep.split(":")
        elif isinstance(ep, dict):
            node, iface = ep.get("node"), ep.get("interface")
            mac, ipv4, ipv6 = ep.get("mac"), ep.get("ipv4"), ep.get("ipv6")
            if mac is not None and (not isinstance(mac, str) or not MAC_RE.match(mac)):
                raise lines.error(epath + ("mac",), f"not a MAC address: {mac!r}")
        else:
            raise lines.error(epath, "an endpoint is 'node:interface' or {node:, interface:}")
        if ipv4 is None and j < len(brief_v4):
            ipv4 = brief_v4[j]
        if ipv6 is None and j < len(brief_v6):
            ipv6 = brief_v6[j]
        if node in ("host", "mgmt-net", "macvlan"):
            raise lines.error(epath, f"endpoint {node}:{iface} attaches to the host's network, which a twin never does")
        if node not in nodes:
            raise lines.error(epath, f"unknown node {node!r} (nodes: {', '.join(sorted(nodes))})")
        _check_ifname(iface, epath, lines)
        key = (str(node), str(iface))
        if key in used:
            raise lines.error(epath, f"interface {node}:{iface} is already used by {used[key]}")
        used[key] = f"links[{i}] ({lines.at(*lpath)})"
        eps.append(Endpoint(node=str(node), iface=str(iface), mac=mac.lower() if mac else None,
                            ipv4=str(ipv4) if ipv4 else None, ipv6=str(ipv6) if ipv6 else None))
    if eps[0].node == eps[1].node and nodes[eps[0].node].role != "bridge":
        raise lines.error(lpath + ("endpoints",), f"both ends are on node {eps[0].node}")
    return Link(a=eps[0], b=eps[1], mtu=mtu)
