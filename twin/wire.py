"""The twin agent's wire format: plain JSON for topologies and twin results, both directions.

Django-free. The shapes are those of `twin/schema/agent-v1.json` (the versioned contract);
`schema_check` validates a document against one of its definitions. The agent treats every
topology it receives as untrusted: `topology_from_wire` re-checks what `load_lab` checked
(names that become namespace and interface names, daemon names that become paths under
/usr/lib/frr, `exec:` lines), so a caller holding the token still cannot make the agent run
anything the lab loader would have refused.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .base import (
    ApplyResult,
    ConvergeResult,
    Endpoint,
    Link,
    Node,
    RejectedLine,
    ReloadResult,
    Topology,
    TopologyError,
)

SCHEMA_PATH = Path(__file__).with_name("schema") / "agent-v1.json"
SCHEMA_ID = "aegis.twin-agent/v1"
ROLES = ("frr", "host", "bridge")


class WireError(ValueError):
    """A document that does not follow the agent's schema; the message says which field."""


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@lru_cache(maxsize=64)
def _validator(definition: str) -> Any:
    from jsonschema import Draft202012Validator

    root = schema()
    if definition not in root["$defs"]:
        raise KeyError(f"no definition {definition!r} in {SCHEMA_PATH.name}")
    # Validate against one definition while keeping the root's $defs reachable for $ref.
    return Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": root["$defs"]})


def schema_check(definition: str, doc: Any) -> None:
    """Raise WireError naming the first field of `doc` that breaks `definition`."""
    errors = sorted(_validator(definition).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(document)"
        raise WireError(f"{definition}: {where}: {err.message[:300]}")


# ---------------------------------------------------------------------- topology


def topology_to_wire(topology: Topology) -> dict[str, Any]:
    def endpoint(ep: Endpoint) -> dict[str, Any]:
        return {"node": ep.node, "iface": ep.iface, "mac": ep.mac, "ipv4": ep.ipv4, "ipv6": ep.ipv6}

    return {
        "name": topology.name,
        "source": topology.source,
        "warnings": list(topology.warnings),
        "nodes": {n: {"role": node.role, "frr_conf": node.frr_conf, "daemons": list(node.daemons),
                      "exec": list(node.exec), "image": node.image, "labels": dict(node.labels),
                      "config_path": node.config_path}
                  for n, node in sorted(topology.nodes.items())},
        "links": [{"a": endpoint(link.a), "b": endpoint(link.b), "mtu": link.mtu} for link in topology.links],
    }


def topology_from_wire(doc: Any) -> Topology:
    """Rebuild a Topology from JSON, refusing anything `load_lab` would have refused."""
    from .topology import IFNAME_RE, KNOWN_DAEMONS, LAB_NAME_RE, MAC_RE, NODE_NAME_RE, exec_refusal

    try:
        schema_check("topology", doc)
    except WireError as exc:
        raise TopologyError(str(exc)) from None
    if not LAB_NAME_RE.match(doc["name"]):
        raise TopologyError(f"topology name {doc['name']!r} is not a valid lab name")
    nodes: dict[str, Node] = {}
    for name, raw in doc["nodes"].items():
        if not NODE_NAME_RE.match(name):
            raise TopologyError(f"node name {name!r} is not valid (letters, digits, '_', single '-')")
        if raw["role"] not in ROLES:
            raise TopologyError(f"node {name}: role {raw['role']!r} is not one of {', '.join(ROLES)}")
        bad = [d for d in raw["daemons"] if d not in KNOWN_DAEMONS]
        if bad:
            raise TopologyError(f"node {name}: unknown daemons {', '.join(map(repr, bad))}")
        for command in raw["exec"]:
            why = exec_refusal(command)
            if why:
                raise TopologyError(f"node {name}: exec {command!r} refused: {why}")
        nodes[name] = Node(name=name, role=raw["role"], frr_conf=raw.get("frr_conf"), daemons=list(raw["daemons"]),
                           exec=list(raw["exec"]), image=raw.get("image"), labels=dict(raw.get("labels") or {}),
                           config_path=raw.get("config_path"))

    def endpoint(raw: dict[str, Any], where: str) -> Endpoint:
        if raw["node"] not in nodes:
            raise TopologyError(f"{where}: unknown node {raw['node']!r}")
        if not IFNAME_RE.match(raw["iface"]) or raw["iface"] in ("lo", ".", ".."):
            raise TopologyError(f"{where}: interface name {raw['iface']!r} is not valid")
        if raw.get("mac") and not MAC_RE.match(raw["mac"]):
            raise TopologyError(f"{where}: {raw['mac']!r} is not a MAC address")
        for key in ("ipv4", "ipv6"):
            if raw.get(key):
                try:
                    ipaddress.ip_interface(raw[key])
                except ValueError:
                    raise TopologyError(f"{where}: {key} {raw[key]!r} is not an address/prefix") from None
        return Endpoint(node=raw["node"], iface=raw["iface"], mac=raw.get("mac"), ipv4=raw.get("ipv4"),
                        ipv6=raw.get("ipv6"))

    links = [Link(a=endpoint(raw["a"], f"link {i} a"), b=endpoint(raw["b"], f"link {i} b"), mtu=raw.get("mtu"))
             for i, raw in enumerate(doc["links"])]
    return Topology(name=doc["name"], nodes=nodes, links=links, source=doc["source"],
                    warnings=list(doc.get("warnings") or []))


# ---------------------------------------------------------------------- results


def rejected_to_wire(r: RejectedLine) -> dict[str, Any]:
    return {"node": r.node, "line": r.line, "message": r.message, "line_no": r.line_no}


def rejected_from_wire(d: dict[str, Any]) -> RejectedLine:
    return RejectedLine(node=d["node"], line=d["line"], message=d["message"], line_no=d.get("line_no"))


def converge_to_wire(c: ConvergeResult) -> dict[str, Any]:
    return {"converged": c.converged, "seconds": c.seconds, "still_moving": list(c.still_moving),
            "down": list(c.down)}


def converge_from_wire(d: dict[str, Any]) -> ConvergeResult:
    return ConvergeResult(converged=d["converged"], seconds=d["seconds"], still_moving=list(d["still_moving"]),
                          down=list(d["down"]))


def apply_to_wire(a: ApplyResult) -> dict[str, Any]:
    return {"node": a.node, "applied": list(a.applied), "rejected": [rejected_to_wire(r) for r in a.rejected]}


def apply_from_wire(d: dict[str, Any]) -> ApplyResult:
    return ApplyResult(node=d["node"], applied=list(d["applied"]),
                       rejected=[rejected_from_wire(r) for r in d["rejected"]])


def reload_to_wire(r: ReloadResult) -> dict[str, Any]:
    return {"node": r.node, "lines_to_delete": list(r.lines_to_delete), "lines_to_add": list(r.lines_to_add),
            "applied": r.applied, "output": r.output}


def reload_from_wire(d: dict[str, Any]) -> ReloadResult:
    return ReloadResult(node=d["node"], lines_to_delete=list(d["lines_to_delete"]),
                        lines_to_add=list(d["lines_to_add"]), applied=d["applied"], output=d["output"])
