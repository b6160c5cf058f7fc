"""Result documents for the compliance tests, shaped as docs/result-format.md describes.

`clean_result()` is a run of the bundled triangle lab on the real netns twin that passed every
check; tests derive failing runs from it with `variant(...)`, so each test states only what differs.
"""

from __future__ import annotations

import copy
from typing import Any

_CLEAN: dict[str, Any] = {
    "format": "aegis.preflight.result/v1",
    "run_id": "20261125-193000-ab12cd",
    "verdict": "needs_approval",
    "reasons": [],
    "operator": "olga",
    "risk": {
        "tier": "medium",
        "rubric_version": "risk-rubric/1",
        "score": 4,
        "factors": [{"name": "devices_touched", "value": 1, "points": 1}],
    },
    "change": {
        "title": "Announce 10.42.0.0/24 from r1",
        "description": "New customer range behind r1; static to Null0 and a network statement.",
        "devices": {"r1": "ip route 10.42.0.0/24 Null0\nrouter bgp 65001\n network 10.42.0.0/24\n"},
        "expect": {"prefixes_added": {"r2": ["10.42.0.0/24"], "r3": ["10.42.0.0/24"]}, "declared": True},
        "source": "file",
    },
    "lab": {"name": "triangle", "path": "labs/triangle", "digest": "sha256:" + "ab" * 32},
    "static_findings": [
        {
            "device": "r1",
            "line_no": 2,
            "line": "router bgp 65001",
            "severity": "warning",
            "code": "BGP_NO_ROUTER_ID",
            "message": "no explicit bgp router-id",
        },
    ],
    "twin": {
        "backend": "netns",
        "tier": "real",
        "frr_version": "8.4.4",
        "nodes": 3,
        "links": 3,
        "baseline_convergence_s": 3.1,
        "change_convergence_s": 2.0,
        "rollback_convergence_s": 2.2,
        "load_errors": [],
        "warnings": [],
        "differences_from_production": ["no forwarding hardware: data plane is the Linux kernel"],
    },
    "apply": {"rejected": []},
    "diff": {
        "nodes": {
            "r1": {
                "routes_added": ["10.42.0.0/24"],
                "routes_removed": [],
                "routes_changed": [],
                "sessions_lost": [],
                "sessions_gained": [],
                "adjacencies_lost": [],
                "adjacencies_gained": [],
            },
            "r2": {
                "routes_added": ["10.42.0.0/24"],
                "routes_removed": [],
                "routes_changed": [],
                "sessions_lost": [],
                "sessions_gained": [],
                "adjacencies_lost": [],
                "adjacencies_gained": [],
            },
            "r3": {
                "routes_added": [],
                "routes_removed": [],
                "routes_changed": [],
                "sessions_lost": [],
                "sessions_gained": [],
                "adjacencies_lost": [],
                "adjacencies_gained": [],
            },
        },
        "reachability_lost": [],
        "reachability_gained": [],
        "intended": ["r1 +10.42.0.0/24", "r2 +10.42.0.0/24"],
        "undeclared": [
            {
                "kind": "route_added",
                "node": "r3",
                "key": "10.42.0.0/24",
                "message": "r3 gained route 10.42.0.0/24 (bgp)",
                "loss": False,
            }
        ],
    },
    "invariants": [
        {
            "kind": "must_reach",
            "spec": {"from": "r2", "to": "10.255.0.3"},
            "ok": True,
            "detail": "r2 reaches r3",
        }
    ],
    "rollback": {
        "lines": {"r1": ["no ip route 10.42.0.0/24 Null0", "router bgp 65001", "no network 10.42.0.0/24"]},
        "verified": True,
        "mismatch": [],
    },
    "timings": {"precheck": 0.01, "static": 0.4},
    "snapshots": {
        "baseline": {"nodes": {"r1": {}, "r2": {}, "r3": {}}},
        "after": {"nodes": {}},
        "rollback": {"nodes": {}},
    },
    "llm": None,
    "egress": {"policy": ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], "contacted": []},
    "versions": {"aegis": "0.1.0", "frr": "8.4.4", "python": "3.11.2"},
    "started_at": "2026-11-25T19:30:00Z",
    "finished_at": "2026-11-25T19:30:12Z",
}


def clean_result() -> dict[str, Any]:
    return copy.deepcopy(_CLEAN)


def variant(**changes: Any) -> dict[str, Any]:
    """A copy of the clean result with dotted keys replaced, e.g. variant(**{"rollback.verified": False}).
    A value of `DELETE` removes the key."""
    result = clean_result()
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = result
        for key in parents:
            node = node[key]
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return result


DELETE = object()


def sealed_bundle(result: dict[str, Any], controls: list[dict], frameworks: list[str]) -> dict[str, Any]:
    """A bundle in the layout docs/evidence.md describes (DSSE envelope over an in-toto Statement,
    digest = SHA-256 of the payload), signed with a fresh Ed25519 key."""
    import base64
    import hashlib

    import rfc8785
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "change", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://aegis.local/attestation/preflight-evidence/v1",
        "predicate": {
            "run_id": result["run_id"],
            "verdict": result["verdict"],
            "result": result,
            "frameworks": frameworks,
            "controls": controls,
            "seal": {
                "sealed_at": "2026-11-25T19:30:15Z",
                "operator": result.get("operator"),
                "keyid": "k" * 32,
            },
        },
    }
    body = rfc8785.dumps(statement)
    payload_type = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(body), body)
    sig = Ed25519PrivateKey.generate().sign(pae)
    return {
        "format": "aegis.evidence.bundle/v1",
        "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
        "dsseEnvelope": {
            "payloadType": payload_type,
            "payload": base64.b64encode(body).decode(),
            "signatures": [{"keyid": "k" * 32, "sig": base64.b64encode(sig).decode()}],
        },
        "ledger": {"origin": "aegis.test/ledger", "kind": "bundle", "index": 7, "leaf_hash": "00" * 32},
        "keys": {},
    }
