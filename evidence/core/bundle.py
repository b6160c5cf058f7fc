"""The sealed evidence bundle: an in-toto Statement v1 in a DSSE envelope, plus its ledger proof.

`bundle.json` layout (docs/evidence.md has the full description)::

    {"format": "aegis.evidence.bundle/v1",
     "digest": "sha256:<hex>",            # SHA-256 of the DSSE payload = the seal digest
     "dsseEnvelope": {"payloadType": "application/vnd.in-toto+json",
                      "payload": "<base64 of the RFC 8785 Statement>",
                      "signatures": [{"keyid": "<32 hex>", "sig": "<base64>"}]},
     "ledger": {"origin": "...", "kind": "bundle", "index": 7,
                "leaf_hash": "<hex>", "tlog_proof": "c2sp.org/tlog-proof@v1\\n..."},
     "keys": {"<keyid>": "<PEM public key>"}}   # a convenience copy: trust comes from elsewhere

The ledger block sits outside the signature because the log position is only known after
signing; it is self-authenticating instead (signed checkpoint + inclusion proof).
The file is written in one fixed layout (`bundle_dumps`), so a verifier can insist that
the bytes it was given are exactly that layout and any flipped byte is noticed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from evidence.core.canonical import canonical_bytes, digest_str, sha256_hex
from evidence.core.dsse import IN_TOTO_PAYLOAD_TYPE, dsse_sign
from evidence.core.keys import SigningKey

BUNDLE_FORMAT = "aegis.evidence.bundle/v1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://aegis.local/attestation/preflight-evidence/v1"
RESULT_FORMAT = "aegis.preflight.result/v1"
VERDICTS = ("blocked", "needs_approval", "ship_ready")
CIP_TWIN_CLAUSE = "NERC CIP-010-4 R1.5.2"

# Lab files larger than this are recorded by digest only (a config is a few KB).
LAB_FILE_TEXT_LIMIT = 256 * 1024
LAB_FILES_MAX = 200
LAB_TEXT_TOTAL_LIMIT = 4 * 1024 * 1024  # beyond this, further files are recorded by digest only


class BundleError(ValueError):
    """Input that cannot be sealed; the message names the field to fix."""


def ledger_leaf_data(kind: str, digest: str) -> bytes:
    """The bytes a ledger leaf hashes: simple enough to rebuild with any tool."""
    if "\n" in kind or "\n" in digest:
        raise BundleError("ledger kind and digest must be single lines")
    return f"aegis-ledger/v1\n{kind}\n{digest}\n".encode()


def result_check(result: Any) -> None:
    """Refuse a result document that is not the pipeline's format, naming the field."""
    if not isinstance(result, dict):
        raise BundleError("result: expected a JSON object (the pipeline's result.json)")
    if result.get("format") != RESULT_FORMAT:
        raise BundleError(f"result.format: expected {RESULT_FORMAT!r}, got {result.get('format')!r}")
    if not isinstance(result.get("run_id"), str) or not result["run_id"]:
        raise BundleError("result.run_id: missing or empty")
    if result.get("verdict") not in VERDICTS:
        raise BundleError(
            f"result.verdict: expected one of {', '.join(VERDICTS)}, got {result.get('verdict')!r}"
        )
    lab = result.get("lab")
    if not isinstance(lab, dict) or not isinstance(lab.get("name"), str):
        raise BundleError("result.lab.name: missing")
    node_configs = lab.get("node_configs", {})
    if not isinstance(node_configs, dict):
        raise BundleError("result.lab.node_configs: expected {node: 'sha256:…'}")
    for node, dig in node_configs.items():
        if not isinstance(dig, str) or not dig.startswith("sha256:") or len(dig) != 71:
            raise BundleError(f"result.lab.node_configs.{node}: expected 'sha256:<64 hex>', got {dig!r}")
    if not isinstance(result.get("change"), dict):
        raise BundleError("result.change: missing (the change that was preflighted)")
    try:
        canonical_bytes(result)
    except ValueError as exc:
        raise BundleError(f"result: {exc}") from exc


def lab_files_collect(lab_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Every file of a lab folder (topology, node configs, aegis.yml) with its digest and text.

    `changes/` is left out: the change being sealed is recorded on its own.
    """
    lab_dir = Path(lab_dir)
    if not lab_dir.is_dir():
        raise BundleError(f"lab folder {lab_dir} does not exist")
    files: dict[str, dict[str, Any]] = {}
    text_total = 0
    for path in sorted(lab_dir.rglob("*")):
        rel = path.relative_to(lab_dir)
        if rel.parts[0] in ("changes",) or any(p.startswith(".") for p in rel.parts):
            continue
        if path.is_symlink():
            # A link could point anywhere on the host (/etc/shadow); the bundle leaves the
            # perimeter, so only the fact that a link was there is recorded, never its target.
            files[rel.as_posix()] = {"skipped": "symbolic link: not followed"}
            continue
        if not path.is_file():
            continue
        if len(files) >= LAB_FILES_MAX:
            raise BundleError(
                f"lab folder {lab_dir} has more than {LAB_FILES_MAX} files; is it the right folder?"
            )
        data = path.read_bytes()
        entry: dict[str, Any] = {"sha256": sha256_hex(data), "bytes": len(data)}
        if len(data) <= LAB_FILE_TEXT_LIMIT and text_total + len(data) <= LAB_TEXT_TOTAL_LIMIT:
            try:
                entry["text"] = data.decode("utf-8")
                text_total += len(data)
            except UnicodeDecodeError:
                pass  # binary: digest only
        files[rel.as_posix()] = entry
    return files


def node_config_files(node_configs: dict[str, str], lab_files: dict[str, dict[str, Any]]) -> dict[str, str]:
    """{node: lab file path} for every node whose config digest matches a recorded file."""
    by_digest: dict[str, str] = {}
    for rel, entry in sorted(lab_files.items()):
        if "sha256" in entry:
            by_digest.setdefault("sha256:" + entry["sha256"], rel)
    return {node: by_digest[dig] for node, dig in sorted(node_configs.items()) if dig in by_digest}


def twin_vs_production(result: dict[str, Any]) -> dict[str, Any]:
    """The statement CIP-010-4 R1.5.2 asks for: how the test environment differs from production."""
    twin = result.get("twin") or {}
    differences = list(twin.get("differences_from_production") or [])
    if twin.get("tier") == "simulated" and not any("simulat" in str(d).lower() for d in differences):
        differences.insert(0, "simulated twin: no routing daemons ran; results come from a seeded model")
    return {
        "clause": CIP_TWIN_CLAUSE,
        "environment": {k: twin.get(k) for k in ("backend", "tier", "frr_version", "nodes", "links")},
        "differences": differences,
        "accounted_for_by": [
            "the twin runs the lab's own FRR configuration files, digests recorded as statement subjects",
            "every node's baseline state is snapshotted and compared before and after the change",
            "rollback is rehearsed in the twin and must restore the baseline snapshot",
            "post-implementation verification on production is outside this bundle (CM-4(2), CIP R1.4.2)",
        ],
    }


def egress_statement(result: dict[str, Any]) -> dict[str, Any]:
    record = result.get("egress") or {}
    contacted = list(record.get("contacted") or [])
    return {
        "outbound": "none" if not contacted else "inside-perimeter-only",
        "contacted": contacted,
        "policy": list(record.get("policy") or []),
        "how_held": (
            "twin namespaces have no link to the host network; every other connection passes "
            "AEGIS's egress policy, which refuses destinations outside the allowed networks "
            "before a socket opens"
        ),
    }


def statement_build(
    result: dict[str, Any],
    *,
    change_text: str | None,
    lab_files: dict[str, dict[str, Any]] | None,
    operator: str | None,
    frameworks: list[str],
    controls: list[dict[str, Any]] | None,
    sealed_at: str,
    keyid: str,
    ledger_origin: str,
    software: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The in-toto Statement of one preflight run. Pure: same inputs, same statement."""
    result_check(result)
    if change_text is None:
        # Submitted from a form or the API: the change has no file of its own, so its RFC 8785
        # JSON stands in; that keeps the subject recomputable by any verifier.
        change_text = canonical_bytes(result["change"]).decode("utf-8")
    lab = result["lab"]
    subjects = [{"name": "change", "digest": {"sha256": sha256_hex(change_text.encode("utf-8"))}}]
    for node in sorted(lab.get("node_configs", {})):
        subjects.append(
            {
                "name": f"lab/{lab['name']}/{node}/frr.conf",
                "digest": {"sha256": lab["node_configs"][node][7:]},
            }
        )
    predicate = {
        "run_id": result["run_id"],
        "verdict": result["verdict"],
        "tier": (result.get("twin") or {}).get("tier"),
        "risk_rubric_version": (result.get("risk") or {}).get("rubric_version"),
        "result": result,
        "inputs": {
            "change_text": change_text,
            "lab": {
                "name": lab["name"],
                "path": lab.get("path"),
                "digest": lab.get("digest"),
                "topology_digest": lab.get("topology_digest"),
                "node_configs": lab.get("node_configs", {}),
                "files": lab_files or {},
                # Which recorded file holds each node's config (matched by digest), so an
                # examiner can read the exact text behind every config subject.
                "node_config_files": node_config_files(lab.get("node_configs", {}), lab_files or {}),
            },
        },
        "twin_vs_production": twin_vs_production(result),
        "egress": egress_statement(result),
        "frameworks": list(frameworks),
        "controls": list(controls or []),
        "seal": {
            "sealed_at": sealed_at,
            "operator": operator,
            "keyid": keyid,
            "ledger_origin": ledger_origin,
            "software": software or {},
        },
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def statement_seal(statement: dict[str, Any], key: SigningKey) -> tuple[dict[str, Any], str]:
    """(DSSE envelope, seal digest) for a statement: canonical bytes, signed, hashed."""
    body = canonical_bytes(statement)
    return dsse_sign(IN_TOTO_PAYLOAD_TYPE, body, key), digest_str(body)


def bundle_assemble(
    envelope: dict[str, Any], digest: str, ledger: dict[str, Any], public_keys: dict[str, str]
) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "digest": digest,
        "dsseEnvelope": envelope,
        "ledger": ledger,
        "keys": dict(public_keys),
    }


def bundle_dumps(bundle: dict[str, Any]) -> bytes:
    """The one file layout of bundle.json (the standalone verifier rebuilds it byte for byte)."""
    return (json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def bundle_statement(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Statement inside a bundle, decoded but NOT verified (use verify for that)."""
    try:
        return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"bundle has no readable statement: {exc}") from exc
