"""`lab_record`: invariants a lab already satisfies, read from a settled twin, written for review.

A team with an existing containerlab lab has no `aegis.yml`; writing one by hand is the chore
that keeps invariants empty. The twin's baseline snapshot already says what holds: every BGP
session established, every prefix a router learned from a routing protocol or a static route,
every loopback reaching every other loopback. Those become `session_established`,
`prefix_present` and `must_reach` entries appended to `aegis.yml` (existing entries and comments
are kept; an entry already there is not repeated), marked as recorded so a reviewer knows to
prune what is incidental before committing.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from preflight.core.invariants import INVARIANTS_FILE, invariants_load
from twin.base import Backend, Progress, Topology, no_progress
from twin.topology import load_lab

# Routes worth an invariant: learned or configured, not the router's own interfaces.
RECORDED_PROTOCOLS = frozenset({"bgp", "ospf", "ospf6", "isis", "rip", "ripng", "static", "eigrp", "babel"})


def observed_invariants(snapshot: dict[str, Any]) -> list[dict[str, dict[str, str]]]:
    """Invariants (in aegis.yml's form) that hold in `snapshot`, in a stable order."""
    out: list[dict[str, dict[str, str]]] = []
    nodes = snapshot.get("nodes") or {}
    for node in sorted(nodes):
        for peer, info in sorted((nodes[node].get("bgp") or {}).items()):
            if info.get("state") == "Established":
                out.append({"session_established": {"node": node, "peer": peer}})
    for node in sorted(nodes):
        for prefix, route in sorted((nodes[node].get("routes") or {}).items()):
            if route.get("protocol") in RECORDED_PROTOCOLS:
                out.append({"prefix_present": {"node": node, "prefix": prefix}})
    for key, ok in sorted(((snapshot.get("reachability") or {}).get("pairs") or {}).items()):
        src, _, rest = key.partition("->")
        _dst, _, address = rest.partition(":")
        # IPv4 only: the invariant evaluator matches a pair key by its last ':' field.
        if ok and src and address and ipaddress.ip_address(address).version == 4:
            out.append({"must_reach": {"from": src, "to": address}})
    return out


def _key(entry: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    kind, spec = next(iter(entry.items()))
    return kind, tuple(sorted((str(k), str(v)) for k, v in (spec or {}).items()))


def record_merge(lab_dir: str | Path, topology: Topology, observed: list[dict[str, dict[str, str]]],
                 *, now: datetime | None = None) -> dict[str, Any]:
    """Append the observed invariants not yet in `aegis.yml`; return {path, added, kept, counts}.

    Appends text rather than re-dumping the YAML so the team's comments and order survive; when
    `invariants:` is not the file's last top-level key the list cannot be appended to in place,
    and the file is rewritten from its data (the report says comments were dropped).
    """
    path = Path(lab_dir) / INVARIANTS_FILE
    existing = invariants_load(lab_dir, topology)  # validates what is there before touching it
    have = {(inv["kind"], tuple(sorted((k, str(v)) for k, v in inv["spec"].items()))) for inv in existing}
    added = [e for e in observed if _key(e) not in have]
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rewritten = False
    if added:
        original = path.read_text() if path.is_file() else None
        text = original or ""
        tops = re.findall(r"^([A-Za-z_][\w-]*)[ \t]*:", text, flags=re.M)
        if not text.strip():
            text = "# AEGIS invariants: what must hold after any change (docs/pipeline.md).\ninvariants:\n"
        elif "invariants" not in tops:
            text = text.rstrip("\n") + "\ninvariants:\n"
        elif tops[-1] != "invariants" or re.search(r"^invariants[ \t]*:[ \t]*[^\s#]", text, flags=re.M):
            data = yaml.safe_load(text) or {}
            data["invariants"] = list(data.get("invariants") or [])
            data["invariants"] = data.pop("invariants")  # last key, so the list can be appended to
            text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
            rewritten = True
        # Same indentation as the list's existing items (block sequences may or may not be indented).
        key_at = re.search(r"^invariants[ \t]*:", text, flags=re.M)
        tail = text[key_at.start():] if key_at else ""
        found = re.search(r"^([ \t]*)- ", tail, flags=re.M)
        indent = found.group(1) if found else "  "
        header = f"{indent}# recorded by `manage.py lab_record` at {stamp} from a settled twin: review and prune\n"
        items = "".join(f"{indent}- {_flow(e)}\n" for e in added)
        path.write_text(text.rstrip("\n") + "\n" + header + items)
        try:
            invariants_load(lab_dir, topology)  # what we wrote must load; else put the file back
        except Exception:
            if original is None:
                path.unlink()
            else:
                path.write_text(original)
            raise
    counts: dict[str, int] = {}
    for e in added:
        kind = next(iter(e))
        counts[kind] = counts.get(kind, 0) + 1
    return {"path": str(path), "added": added, "kept": len(existing), "counts": counts,
            "comments_dropped": rewritten}


def _flow(entry: dict[str, dict[str, str]]) -> str:
    kind, spec = next(iter(entry.items()))
    # Quoted when a value has a ':' (IPv6): a plain scalar with ':' is ambiguous in a flow mapping.
    return f"{kind}: {{" + ", ".join(f"{k}: " + (f'"{v}"' if ":" in v else v) for k, v in spec.items()) + "}"


class RecordError(RuntimeError):
    """The lab could not be brought to a settled state; nothing was written."""


def lab_record(lab_dir: str | Path, backend: Backend, *, run_id: str, converge_timeout: float = 120.0,
               progress: Progress = no_progress) -> dict[str, Any]:
    """Bring the lab up, let it settle, write what holds into aegis.yml (see `record_merge`).

    The twin is always torn down. A lab that does not settle writes nothing: an unsettled
    snapshot would record transient state as an invariant.
    """
    topology = load_lab(lab_dir)
    invariants_load(lab_dir, topology)  # a broken aegis.yml is reported before anything spawns
    twin = backend.spawn(topology, run_id, progress)
    try:
        conv = twin.converge(converge_timeout)
        if not conv.converged:
            raise RecordError(f"the lab did not settle within {converge_timeout:.0f} s "
                              f"({', '.join(conv.still_moving + conv.down) or 'state still changing'}); nothing written")
        snapshot = twin.snapshot()
    finally:
        twin.teardown()
    outcome = record_merge(lab_dir, topology, observed_invariants(snapshot))
    outcome["convergence_s"] = conv.seconds
    outcome["tier"] = backend.tier
    return outcome
