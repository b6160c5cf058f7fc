"""Invariants declared beside a lab (`labs/<lab>/aegis.yml`), evaluated on the changed state.

```yaml
invariants:
  - must_reach: {from: r1, to: 10.255.0.3}        # data plane: ping from inside r1
  - must_not_reach: {from: r2, to: 198.51.100.1}
  - session_established: {node: r1, peer: 10.0.12.1}
  - prefix_present: {node: r2, prefix: 192.0.2.0/24}
  - prefix_absent: {node: r2, prefix: 10.66.0.0/16}
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from twin.base import Topology, TopologyError

INVARIANTS_FILE = "aegis.yml"
KINDS: dict[str, tuple[str, ...]] = {
    "must_reach": ("from", "to"),
    "must_not_reach": ("from", "to"),
    "session_established": ("node", "peer"),
    "prefix_present": ("node", "prefix"),
    "prefix_absent": ("node", "prefix"),
}
MAX_FILE_BYTES = 128 * 1024

Reach = Callable[[str, str], bool]


def invariants_load(lab_dir: str | Path, topology: Topology) -> list[dict[str, Any]]:
    """Read and validate the lab's invariants; a lab without aegis.yml has none."""
    path = Path(lab_dir) / INVARIANTS_FILE
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    if len(text) > MAX_FILE_BYTES:
        raise TopologyError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise TopologyError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("invariants", []), list):
        raise TopologyError(f"{path}: expected a mapping with a list `invariants:`")
    out = []
    for i, entry in enumerate(data.get("invariants") or [], start=1):
        out.append(_invariant_check(entry, topology, f"{path}: invariant #{i}"))
    return out


def _invariant_check(entry: Any, topology: Topology, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise TopologyError(f"{where}: write one kind per entry, e.g. `- must_reach: {{from: r1, to: 10.0.0.1}}`")
    kind, spec = next(iter(entry.items()))
    if kind not in KINDS:
        raise TopologyError(f"{where}: unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if not isinstance(spec, dict) or set(spec) != set(KINDS[kind]):
        raise TopologyError(f"{where}: {kind} needs exactly the keys {', '.join(KINDS[kind])}")
    spec = {k: str(v) for k, v in spec.items()}
    node = spec.get("from") or spec.get("node")
    if node not in topology.nodes:
        raise TopologyError(f"{where}: node {node!r} is not in lab {topology.name!r}")
    try:
        if "to" in spec:
            ipaddress.ip_address(spec["to"])
        if "prefix" in spec:
            spec["prefix"] = str(ipaddress.ip_network(spec["prefix"], strict=True))
    except ValueError as exc:
        raise TopologyError(f"{where}: {exc}") from None
    return {"kind": kind, "spec": spec}


def invariants_evaluate(invariants: list[dict[str, Any]], snapshot: dict[str, Any],
                        reach: Reach | None = None) -> list[dict[str, Any]]:
    """Each invariant with ok and a plain-language detail, evaluated on `snapshot`.

    Live pings (pairs outside the snapshot's reachability sample) run at once, not one after
    the other: a `must_not_reach` holds only once its ping has waited out its timeout (1 s), and
    a lab with several of them would otherwise pay that second for each.
    """
    if reach is not None:
        pairs = sorted({(i["spec"]["from"], i["spec"]["to"]) for i in invariants
                        if i["kind"] in ("must_reach", "must_not_reach")
                        and _sampled(snapshot, i["spec"]["from"], i["spec"]["to"]) is None})
        if len(pairs) > 1:
            with ThreadPoolExecutor(max_workers=min(16, len(pairs))) as ex:
                measured = dict(zip(pairs, ex.map(lambda p: bool(reach(*p)), pairs), strict=True))
            live = reach
            reach = lambda src, dst: measured[(src, dst)] if (src, dst) in measured else live(src, dst)  # noqa: E731
    results = []
    for inv in invariants:
        ok, detail = _evaluate_one(inv["kind"], inv["spec"], snapshot, reach)
        results.append({"kind": inv["kind"], "spec": inv["spec"], "ok": ok, "detail": detail})
    return results


def _evaluate_one(kind: str, spec: dict[str, str], snap: dict[str, Any], reach: Reach | None) -> tuple[bool, str]:
    nodes = snap.get("nodes", {})
    if kind in ("must_reach", "must_not_reach"):
        src, dst = spec["from"], spec["to"]
        reached = _reached(snap, src, dst, reach)
        if reached is None:
            return False, f"reachability {src} -> {dst} could not be measured"
        if kind == "must_reach":
            return reached, f"{src} {'reaches' if reached else 'does not reach'} {dst}"
        return not reached, f"{src} {'reaches' if reached else 'does not reach'} {dst}"
    node = nodes.get(spec["node"], {})
    if kind == "session_established":
        state = node.get("bgp", {}).get(spec["peer"], {}).get("state", "absent")
        return state == "Established", f"{spec['node']} BGP session to {spec['peer']}: {state}"
    present = spec["prefix"] in node.get("routes", {})
    if kind == "prefix_present":
        return present, f"{spec['node']} {'has' if present else 'has no'} route {spec['prefix']}"
    return not present, f"{spec['node']} {'has' if present else 'has no'} route {spec['prefix']}"


def _sampled(snap: dict[str, Any], src: str, dst: str) -> bool | None:
    """The snapshot's own ping of src -> dst, or None when the sample does not hold that pair."""
    for key, ok in snap.get("reachability", {}).get("pairs", {}).items():
        if key.startswith(f"{src}->") and key.rsplit(":", 1)[-1] == dst:
            return bool(ok)
    return None


def _reached(snap: dict[str, Any], src: str, dst: str, reach: Reach | None) -> bool | None:
    sampled = _sampled(snap, src, dst)
    if sampled is not None:
        return sampled
    if reach is None:
        return None
    return bool(reach(src, dst))
