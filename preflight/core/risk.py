"""The risk rubric: blast radius of a change as points, then a tier. Documented in
docs/risk-rubric.md; any change to the points or thresholds bumps RUBRIC_VERSION so a
sealed result always names the rubric it was judged by.
"""

from __future__ import annotations

import re
from typing import Any

from twin.base import Topology

RUBRIC_VERSION = "risk-rubric/1"
CRITICALITY_LABEL = "aegis.criticality"
# A node without a label counts as medium: unknown is not low.
CRITICALITY_POINTS = {"low": 0, "medium": 1, "high": 3}
DEFAULT_CRITICALITY = "medium"
TIER_THRESHOLDS = ((6, "high"), (3, "medium"), (0, "low"))  # score >= n -> tier

_POLICY_LINE = re.compile(
    r"^(no\s+)?(route-map\s+(\S+)|ip(?:v6)?\s+prefix-list\s+(\S+)|bgp\s+(?:large-|ext)?community-list\s+"
    r"(?:standard\s+|expanded\s+)?(\S+)|bgp\s+as-path\s+access-list\s+(\S+)|neighbor\s+(\S+))"
)


def policy_objects(change: dict[str, Any]) -> list[str]:
    """Policy objects a change touches: route-maps, prefix/community/as-path lists, neighbours."""
    objects: set[str] = set()
    for device, text in change["devices"].items():
        for line in text.split("\n"):
            m = _POLICY_LINE.match(line.strip())
            if not m:
                continue
            if m.group(3):
                objects.add(f"{device}:route-map {m.group(3)}")
            elif m.group(4):
                objects.add(f"{device}:prefix-list {m.group(4)}")
            elif m.group(5):
                objects.add(f"{device}:community-list {m.group(5)}")
            elif m.group(6):
                objects.add(f"{device}:as-path {m.group(6)}")
            elif m.group(7):
                objects.add(f"{device}:neighbor {m.group(7)}")
    return sorted(objects)


def _points(value: int, steps: tuple[tuple[int, int], ...]) -> int:
    """steps: ((min_value, points), ...) highest first."""
    for minimum, pts in steps:
        if value >= minimum:
            return pts
    return 0


def risk_assess(change: dict[str, Any], topology: Topology, classification: dict[str, Any] | None,
                diff: dict[str, Any] | None) -> dict[str, Any]:
    """Score the change by the rubric; returns {tier, rubric_version, score, factors}."""
    devices = sorted(change["devices"])
    crit = [topology.nodes[d].labels.get(CRITICALITY_LABEL, DEFAULT_CRITICALITY) if d in topology.nodes
            else DEFAULT_CRITICALITY for d in devices]
    crit_points = max((CRITICALITY_POINTS.get(c, CRITICALITY_POINTS[DEFAULT_CRITICALITY]) for c in crit), default=0)
    route_effects = session_effects = reach_lost = 0
    if diff is not None:
        for entry in diff["nodes"].values():
            route_effects += len(entry["routes_added"]) + len(entry["routes_removed"]) + len(entry["routes_changed"])
            session_effects += (len(entry["sessions_lost"]) + len(entry["sessions_gained"]) +
                                len(entry["adjacencies_lost"]) + len(entry["adjacencies_gained"]))
        reach_lost = len(diff["reachability_lost"])
    policies = policy_objects(change)
    undeclared = len(classification["undeclared"]) if classification else 0
    missing = len(classification["expected_missing"]) if classification else 0
    factors = [
        ("devices_touched", len(devices), _points(len(devices), ((4, 4), (2, 2), (1, 1)))),
        ("max_criticality", max(crit, key=lambda c: CRITICALITY_POINTS.get(c, 1)) if crit else "none", crit_points),
        ("routes_affected", route_effects, _points(route_effects, ((21, 2), (5, 1)))),
        ("sessions_affected", session_effects, _points(session_effects, ((3, 3), (1, 2)))),
        ("policy_objects_changed", len(policies), _points(len(policies), ((2, 3), (1, 2)))),
        ("undeclared_effects", undeclared, 3 if undeclared else 0),
        ("expected_effects_missing", missing, 3 if missing else 0),
        ("reachability_lost", reach_lost, 2 if reach_lost else 0),
    ]
    score = sum(p for _, _, p in factors)
    tier = next(t for threshold, t in TIER_THRESHOLDS if score >= threshold)
    return {
        "tier": tier,
        "rubric_version": RUBRIC_VERSION,
        "score": score,
        "factors": [{"name": n, "value": v, "points": p} for n, v, p in factors],
        "policy_objects": policies,
    }
