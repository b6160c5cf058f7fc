"""Post-implementation verification: does a device's state match what the twin predicted?

Both sides are in the twin's per-node snapshot shape (twin/base.py): `routes`
(selected routes: protocol, distance, metric, sorted next hops) and `bgp` (per peer:
state, remote AS). The twin's prediction is the result's `snapshots.after` for that node.

Compared: every route prefix (present on both, and equal), every BGP peer's state and
remote AS. Not compared, and why:
- IPv6 link-local prefixes (fe80::/64): present on every interface, carry no policy.
- BGP prefix counters (pfx_rcd / pfx_snt): they are consequences of the routes, which are
  compared directly, and they lag the RIB by an update interval while the network settles.
- OSPF / BFD keys: not read from devices by the FRR connector yet (see docs/promotion.md).
"""

from __future__ import annotations

from typing import Any

BGP_FIELDS = ("state", "remote_as")


def _route_view(route: dict[str, Any]) -> dict[str, Any]:
    return {k: route.get(k) for k in ("protocol", "distance", "metric")} | {
        "nexthops": sorted(route.get("nexthops") or [])
    }


def state_compare(device: str, predicted: dict[str, Any], observed: dict[str, Any]) -> list[str]:
    """Every difference between the predicted and the observed state of one device."""
    problems: list[str] = []
    p_routes = {k: v for k, v in (predicted.get("routes") or {}).items() if not k.startswith("fe80:")}
    o_routes = {k: v for k, v in (observed.get("routes") or {}).items() if not k.startswith("fe80:")}
    for prefix in sorted(set(p_routes) | set(o_routes)):
        if prefix not in o_routes:
            problems.append(f"{device}: route {prefix} predicted by the twin is missing on the device")
        elif prefix not in p_routes:
            problems.append(
                f"{device}: route {prefix} ({o_routes[prefix].get('protocol')}) is on the device "
                "but the twin did not predict it"
            )
        elif _route_view(p_routes[prefix]) != _route_view(o_routes[prefix]):
            problems.append(
                f"{device}: route {prefix} differs: twin {_route_view(p_routes[prefix])}, device "
                f"{_route_view(o_routes[prefix])}"
            )
    p_bgp, o_bgp = predicted.get("bgp") or {}, observed.get("bgp") or {}
    for peer in sorted(set(p_bgp) | set(o_bgp)):
        want = {k: (p_bgp.get(peer) or {}).get(k) for k in BGP_FIELDS}
        got = {k: (o_bgp.get(peer) or {}).get(k) for k in BGP_FIELDS}
        if want != got:
            problems.append(f"{device}: BGP peer {peer}: twin {want}, device {got}")
    return problems
