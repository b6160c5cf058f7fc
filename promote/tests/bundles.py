"""Real sealed bundles for the gate tests, made with the evidence core (no database).

`Site` holds a site key, a ledger key and an in-memory ledger of leaf hashes (the same
RFC 9162 tree and C2SP checkpoints as evidence/ledger); `Site.seal(result)` returns a
bundle exactly as evidence seals it, with an inclusion proof against the current
checkpoint. Approvers get their own keys, as AEGIS creates them on first use.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from evidence.core.bundle import bundle_assemble, ledger_leaf_data, statement_build, statement_seal
from evidence.core.checkpoint import checkpoint_sign, tlog_proof_format
from evidence.core.keys import SigningKey
from evidence.core.merkle import inclusion_proof, leaf_hash, root
from promote.core.approvals import ApproverKey, approval_sign, approval_statement

ORIGIN = "aegis.test/ledger"
NOW = datetime(2026, 11, 25, 20, 0, 0, tzinfo=UTC)


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def result_doc(
    *,
    verdict: str = "needs_approval",
    risk: str = "medium",
    tier: str = "real",
    configs: dict[str, str] | None = None,
    change: dict[str, str] | None = None,
    after: dict[str, Any] | None = None,
    run_id: str = "20261125-200000-abcdef",
) -> dict[str, Any]:
    """A preflight result document (docs/result-format.md) with the fields the gate reads."""
    configs = configs or {"r1": "hostname r1\n"}
    return {
        "format": "aegis.preflight.result/v1",
        "run_id": run_id,
        "verdict": verdict,
        "reasons": [],
        "risk": {"tier": risk, "rubric_version": "risk-rubric/1", "score": 3, "factors": []},
        "change": {
            "title": "t",
            "description": "d",
            "devices": change or {"r1": "ip route 10.42.0.0/24 Null0\n"},
            "expect": {},
            "source": "file",
        },
        "lab": {
            "name": "prod",
            "path": "labs/prod",
            "digest": sha("lab"),
            "node_configs": {n: sha(t) for n, t in configs.items()},
            "topology_digest": sha("topo"),
        },
        "twin": {"backend": "netns" if tier == "real" else "simulator", "tier": tier, "frr_version": "8.4.4"},
        "snapshots": {"after": {"nodes": after or {}}},
    }


@dataclass
class Site:
    site_key: SigningKey = field(default_factory=SigningKey.generate)
    log_key: SigningKey = field(default_factory=SigningKey.generate)
    leaves: list[bytes] = field(default_factory=list)

    @property
    def site_keys(self) -> dict[str, Any]:
        return {self.site_key.keyid: self.site_key.public_key}

    @property
    def log_keys(self) -> list[Any]:
        return [self.log_key.public_key]

    def checkpoint(self) -> str:
        return checkpoint_sign(ORIGIN, len(self.leaves), root(self.leaves), self.log_key)

    def proof(self, index: int) -> str:
        return tlog_proof_format(index, inclusion_proof(self.leaves, index), self.checkpoint())

    def seal(
        self,
        result: dict[str, Any],
        *,
        operator: str = "olivia",
        configs: dict[str, str] | None = None,
        lab_files: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        files = lab_files
        if files is None:
            files = {
                f"{n}/frr.conf": {"sha256": sha(t)[7:], "bytes": len(t), "text": t}
                for n, t in (configs or {}).items()
            }
        st = statement_build(
            result,
            change_text=None,
            lab_files=files,
            operator=operator,
            frameworks=["nist-800-53r5"],
            controls=[],
            sealed_at="2026-11-25T20:00:00Z",
            keyid=self.site_key.keyid,
            ledger_origin=ORIGIN,
        )
        envelope, digest = statement_seal(st, self.site_key)
        index = len(self.leaves)
        self.leaves.append(leaf_hash(ledger_leaf_data("bundle", digest)))
        ledger = {
            "origin": ORIGIN,
            "kind": "bundle",
            "index": index,
            "leaf_hash": self.leaves[index].hex(),
            "tlog_proof": self.proof(index),
        }
        return bundle_assemble(envelope, digest, ledger, {self.site_key.keyid: self.site_key.public_pem()})


@dataclass
class Approver:
    username: str
    key: SigningKey = field(default_factory=SigningKey.generate)

    @property
    def registered(self) -> ApproverKey:
        return ApproverKey(self.username, self.key.public_key)

    def approve(
        self,
        bundle: dict[str, Any],
        *,
        decision: str = "approve",
        at: datetime = NOW,
        ttl_s: int = 3600,
        role: str = "approver",
        jti: str | None = None,
        operator: str | None = "olivia",
    ) -> dict[str, Any]:
        st = approval_statement(
            bundle_digest=bundle["digest"],
            run_id="r",
            approver=self.username,
            role=role,
            decision=decision,
            comment="ok",
            issued_at=at,
            ttl_s=ttl_s,
            operator=operator,
            jti=jti,
        )
        return approval_sign(st, self.key)


def tampered(bundle: dict[str, Any], mutate: Any) -> dict[str, Any]:
    b = copy.deepcopy(bundle)
    mutate(b)
    return b
