"""The risk rubric: blast radius of a change as points, then a tier. Documented in
docs/risk-rubric.md; any change to the points or thresholds bumps RUBRIC_VERSION so a
sealed result always names the rubric it was judged by (results sealed under v1 keep saying
`risk-rubric/1`; the v1 table stays in the doc).

v2 tells cosmetic from policy: a description, banner, log setting or comment scores 0; a
policy object (route-map, prefix-list, community / as-path list) counts only when something
references it; a neighbour counts only for lines that change the session or its policy, not
its description; route effects count distinct prefixes, not prefix x router; the criticality
of an unlabelled router is a site setting. Effects beyond the (declared or inferred) intent
still raise risk, as do lines FRR entered differently from how they were written.

v3 adds one factor: redundancy the change removes on purpose (a failure scenario whose loss
`expect.redundancy_removed` declares) scores 3, so such a change always needs a human.
"""

from __future__ import annotations

import re
from typing import Any

from preflight.core.settle import config_statements
from twin.base import Topology
from twin.frrconf import config_model

RUBRIC_VERSION = "risk-rubric/3"
CRITICALITY_LABEL = "aegis.criticality"
CRITICALITY_POINTS = {"low": 0, "medium": 1, "high": 3}
# The site's default for a router without a label (AEGIS_DEFAULT_CRITICALITY): unknown is not low.
DEFAULT_CRITICALITY = "medium"
TIER_THRESHOLDS = ((6, "high"), (3, "medium"), (0, "low"))  # score >= n -> tier

_POLICY_LINE = re.compile(
    r"^(no\s+)?(route-map\s+(\S+)|ip(?:v6)?\s+prefix-list\s+(\S+)|bgp\s+(?:large-|ext)?community-list\s+"
    r"(?:standard\s+|expanded\s+)?(\S+)|bgp\s+as-path\s+access-list\s+(\S+)|neighbor\s+(\S+))"
)
# Lines with no routing effect. `log` lines that open files or talk to syslog are refused by
# the guards before this; what is left (`log timestamp precision`, `log commands`) is cosmetic.
_COSMETIC = re.compile(r"^(no\s+)?(description\b|banner\b|log\s|hostname\b|neighbor\s+\S+\s+description\b|"
                       r"bgp\s+log-neighbor-changes\b|!|#)")
_KIND = {3: "route-map", 4: "prefix-list", 5: "community-list", 6: "as-path"}


def line_is_cosmetic(line: str) -> bool:
    return bool(_COSMETIC.match(" ".join(line.split())))


def policy_objects(change: dict[str, Any]) -> list[str]:
    """Policy objects a change's lines touch (v1's count): route-maps, lists, neighbours."""
    objects: set[str] = set()
    for device, text in change["devices"].items():
        for line in text.split("\n"):
            m = _POLICY_LINE.match(line.strip())
            if not m:
                continue
            for group, kind in _KIND.items():
                if m.group(group):
                    objects.add(f"{device}:{kind} {m.group(group)}")
                    break
            else:
                if m.group(7):
                    objects.add(f"{device}:neighbor {m.group(7)}")
    return sorted(objects)


def policy_objects_in_use(change: dict[str, Any], topology: Topology) -> tuple[list[str], list[str]]:
    """(objects that count, objects that do not) under v2.

    A route-map / list counts when something references it in the device's config after the
    change (a neighbour, a redistribute, a route-map's match, …): only then does it decide what
    routes do. A neighbour counts for every line but its description.
    """
    counted: set[str] = set()
    ignored: set[str] = set()
    for device, text in change["devices"].items():
        node = topology.nodes.get(device)
        base = (node.frr_conf or "") if node else ""
        # In use before (the change edits a live object) or after (the change wires it in).
        referenced = {(r.kind, r.name) for r in config_model(base, text).refs + config_model(base, None).refs}
        for _ctx, line in config_statements(text):
            m = _POLICY_LINE.match(line)
            if not m:
                continue
            for group, kind in _KIND.items():
                if m.group(group):
                    name = f"{device}:{kind} {m.group(group)}"
                    (counted if (kind, m.group(group)) in referenced else ignored).add(name)
                    break
            else:
                if m.group(7):
                    name = f"{device}:neighbor {m.group(7)}"
                    (ignored if line_is_cosmetic(line) else counted).add(name)
    return sorted(counted), sorted(ignored - counted)


def _points(value: int, steps: tuple[tuple[int, int], ...]) -> int:
    """steps: ((min_value, points), ...) highest first."""
    for minimum, pts in steps:
        if value >= minimum:
            return pts
    return 0


def _substantive_devices(change: dict[str, Any]) -> list[str]:
    out = []
    for device, text in change["devices"].items():
        lines = [ln for _ctx, ln in config_statements(text)]
        # A block header alone (`router bgp 1`, `interface eth1`) carries no change of its own.
        if any(not line_is_cosmetic(ln) and not _is_header(ln) for ln in lines):
            out.append(device)
    return sorted(out)


def _is_header(line: str) -> bool:
    return bool(re.match(r"^(router\s+\S+(\s+\S+)?|interface\s+\S+|address-family\s+.*|exit.*)$", line))


def risk_assess(change: dict[str, Any], topology: Topology, classification: dict[str, Any] | None,
                diff: dict[str, Any] | None, *, default_criticality: str = DEFAULT_CRITICALITY,
                ledger: dict[str, Any] | None = None, resilience: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the change by rubric v3; returns {tier, rubric_version, score, factors, ...}."""
    if default_criticality not in CRITICALITY_POINTS:
        raise ValueError(f"default criticality must be one of {', '.join(CRITICALITY_POINTS)}, "
                         f"not {default_criticality!r}")
    devices = _substantive_devices(change)
    cosmetic_only = sorted(set(change["devices"]) - set(devices))
    crit = [topology.nodes[d].labels.get(CRITICALITY_LABEL, default_criticality) if d in topology.nodes
            else default_criticality for d in devices]
    crit_points = max((CRITICALITY_POINTS.get(c, CRITICALITY_POINTS[default_criticality]) for c in crit), default=0)
    prefixes: set[str] = set()
    session_effects = reach_lost = 0
    if diff is not None:
        for entry in diff["nodes"].values():
            for key in ("routes_added", "routes_removed"):
                prefixes.update(r["prefix"] for r in entry[key])
            prefixes.update(r["prefix"] for r in entry["routes_changed"])
            session_effects += (len(entry["sessions_lost"]) + len(entry["sessions_gained"]) +
                                len(entry["adjacencies_lost"]) + len(entry["adjacencies_gained"]))
        reach_lost = len(diff["reachability_lost"])
    policies, unreferenced = policy_objects_in_use(change, topology)
    undeclared = len(classification["undeclared"]) if classification else 0
    missing = len(classification["expected_missing"]) if classification else 0
    reinterpreted = 0
    if ledger and ledger.get("available"):
        for led in ledger["devices"].values():
            reinterpreted += sum(1 for e in led["lines"] if e["status"] == "reinterpreted") + len(led["unrequested"])
    removed = list((resilience or {}).get("redundancy_removed_declared") or [])
    factors = [
        ("devices_touched", len(devices), _points(len(devices), ((4, 4), (2, 2), (1, 1)))),
        ("max_criticality", max(crit, key=lambda c: CRITICALITY_POINTS.get(c, 1)) if crit else "none", crit_points),
        ("prefixes_affected", len(prefixes), _points(len(prefixes), ((21, 2), (5, 1)))),
        ("sessions_affected", session_effects, _points(session_effects, ((3, 3), (1, 2)))),
        ("policy_objects_changed", len(policies), _points(len(policies), ((2, 3), (1, 2)))),
        ("undeclared_effects", undeclared, 3 if undeclared else 0),
        ("expected_effects_missing", missing, 3 if missing else 0),
        ("reachability_lost", reach_lost, 2 if reach_lost else 0),
        ("lines_reinterpreted", reinterpreted, 3 if reinterpreted else 0),
        ("redundancy_removed", len(removed), 3 if removed else 0),
    ]
    score = sum(p for _, _, p in factors)
    tier = next(t for threshold, t in TIER_THRESHOLDS if score >= threshold)
    return {
        "tier": tier,
        "rubric_version": RUBRIC_VERSION,
        "score": score,
        "factors": [{"name": n, "value": v, "points": p} for n, v, p in factors],
        "policy_objects": policies,
        "policy_objects_unreferenced": unreferenced,
        "cosmetic_only_devices": cosmetic_only,
        "default_criticality": default_criticality,
    }
