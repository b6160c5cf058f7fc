"""OSCAL 1.2 assessment-results export of one evidence bundle, and validation against the official schema.

`assessment_results(bundle, controls)` turns a sealed bundle (docs/evidence.md) and its crosswalk
rows into an OSCAL `assessment-results` document:

- one `result` per framework; `reviewed-controls` lists the framework's controls;
- one `observation` per evidence artifact (what AEGIS saw, with its state and why), whose
  `relevant-evidence` points at the bundle in `back-matter`;
- one `finding` per control whose state is not `not_applicable`: OSCAL knows only
  `satisfied` / `not-satisfied`, so `pending` is `not-satisfied` with reason `other` and the
  AEGIS state in a prop (`aegis-state`) and in the status remarks;
- `back-matter` resources: the bundle with its SHA-256 (the seal digest over the DSSE payload,
  and the file's own hash when known), the implicit assessment plan, one citation per catalogue.

Every mapping is marked as AEGIS's judgement (prop `mapping-basis`), every control text with its
V/S marking (prop `text-marking`). UUIDs are v5, derived from the bundle digest, so the same
bundle always exports to the same document. Django-free.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import regex
import rfc8785
from jsonschema import Draft7Validator, ValidationError

from aegis_base.core.files import sha256_digest
from compliance.catalogues import catalogues_load
from compliance.crosswalk import (
    NOT_APPLICABLE,
    NOT_SATISFIED,
    PENDING,
    RESULT_FORMAT,
    SATISFIED,
    STATES,
    control_states,
    controls_for,
)

OSCAL_VERSION = "1.2.3"
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "oscal_assessment-results_schema.json"
BUNDLE_FORMAT = "aegis.evidence.bundle/v1"
AEGIS_NS = "https://aegis.local/ns/oscal"
_UUID_NS = uuid.uuid5(uuid.NAMESPACE_URL, AEGIS_NS)

JUDGEMENT_CAVEAT = (
    "The mapping of AEGIS evidence to framework controls is AEGIS's judgement, not an official "
    "crosswalk published by any framework owner (prop mapping-basis = judgement). Control texts "
    "marked S come from secondary sources and must be checked against the official text."
)

# How AEGIS obtained each artifact: TEST when it ran something, EXAMINE when it read a record.
_METHODS = {
    "static_analysis": "TEST",
    "twin_test": "TEST",
    "twin_verification": "TEST",
    "rollback": "TEST",
    "impact_analysis": "TEST",
    "baseline_and_diff": "TEST",
}
_STATUS = {
    SATISFIED: ("satisfied", "pass"),
    NOT_SATISFIED: ("not-satisfied", "fail"),
    PENDING: ("not-satisfied", "other"),
}


class OscalError(ValueError):
    """A bundle that cannot be exported, or an export that does not validate. Says what to fix."""


# --------------------------------------------------------------------------- reading a bundle


def _b64decode(text: str) -> bytes:
    # DSSE allows standard or URL-safe base64; verifiers must accept both.
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OscalError(f"bundle.dsseEnvelope.payload is not base64: {exc}") from exc


def bundle_view(bundle: Any) -> dict[str, Any]:
    """The parts of a sealed bundle (or, failing that, a plain result.json) the export needs.

    For a sealed bundle the payload's SHA-256 is recomputed and must equal `bundle.digest`;
    signature and ledger proof are `verify_bundle`'s job, not this function's.
    """
    if not isinstance(bundle, dict):
        raise OscalError(f"expected a JSON object (bundle.json or result.json), got {type(bundle).__name__}")
    fmt = bundle.get("format")
    if fmt == RESULT_FORMAT:
        digest = sha256_digest(rfc8785.dumps(bundle))
        return {
            "sealed": False,
            "digest": digest,
            "result": bundle,
            "controls": None,
            "frameworks": None,
            "operator": bundle.get("operator"),
            "sealed_at": None,
            "ledger_index": None,
            "keyid": None,
        }
    if fmt != BUNDLE_FORMAT:
        raise OscalError(
            f"format {fmt!r} is neither a sealed bundle ({BUNDLE_FORMAT!r}) nor a result ({RESULT_FORMAT!r})"
        )
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), str):
        raise OscalError("bundle.dsseEnvelope.payload: missing")
    digest = bundle.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise OscalError(f"bundle.digest: expected 'sha256:<64 hex>', got {digest!r}")
    payload = _b64decode(envelope["payload"])
    actual = sha256_digest(payload)
    if actual != digest:
        raise OscalError(
            f"bundle.digest {digest} does not match the payload ({actual}): the bundle was altered; "
            "run `manage.py verify_bundle` on it"
        )
    try:
        statement = json.loads(payload)
        predicate = statement["predicate"]
        result = predicate["result"]
    except (ValueError, KeyError, TypeError) as exc:
        raise OscalError(f"bundle payload is not an AEGIS statement with predicate.result: {exc}") from exc
    seal = predicate.get("seal") if isinstance(predicate.get("seal"), dict) else {}
    ledger = bundle.get("ledger") if isinstance(bundle.get("ledger"), dict) else {}
    signatures = envelope.get("signatures") or [{}]
    return {
        "sealed": True,
        "digest": digest,
        "result": result,
        "controls": predicate.get("controls") or None,
        "frameworks": predicate.get("frameworks") or None,
        "operator": seal.get("operator") or result.get("operator"),
        "sealed_at": seal.get("sealed_at"),
        "ledger_index": ledger.get("index"),
        "keyid": seal.get("keyid") or (signatures[0] or {}).get("keyid"),
    }


def _timestamp(*candidates: Any) -> str:
    """First parseable time among the candidates, as an OSCAL date-time with time zone (UTC)."""
    for value in candidates:
        if not isinstance(value, str) or not value:
            continue
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # the pipeline writes UTC
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise OscalError("the bundle has no usable time (seal.sealed_at, result.started_at/finished_at)")


def _line(text: Any, fallback: str = "-") -> str:
    # OSCAL strings are one line without leading/trailing blanks.
    cleaned = " ".join(str(text or "").split())
    return cleaned or fallback


# --------------------------------------------------------------------------- building the document


def _uuid(digest: str, *parts: str) -> str:
    return str(uuid.uuid5(_UUID_NS, "/".join((digest, *parts))))


def _prop(name: str, value: Any, **extra: str) -> dict[str, str]:
    return {"name": name, "ns": AEGIS_NS, "value": _line(value)} | extra


def assessment_results(
    bundle: dict,
    controls: list[dict] | None,
    *,
    bundle_href: str = "bundle.json",
    bundle_file_sha256: str | None = None,
) -> dict:
    """The OSCAL 1.2 assessment-results document for `bundle` and its crosswalk rows.

    `controls`: rows from `crosswalk.controls_for`; ``None`` takes the rows sealed in the bundle,
    or computes them for the bundle's frameworks. `bundle_file_sha256`: hex SHA-256 of the
    bundle file's bytes, recorded next to the seal digest when given.
    """
    view = bundle_view(bundle)
    result = view["result"]
    digest = view["digest"]
    if controls is None:
        controls = view["controls"] or controls_for(
            result,
            view["frameworks"] or ["nist-800-53r5"],
            operator=view["operator"],
            seal={"digest": digest, "ledger_index": view["ledger_index"]} if view["sealed"] else None,
        )
    if not controls:
        raise OscalError("no crosswalk rows to export: choose at least one framework")
    _rows_check(controls)
    catalogues = catalogues_load()
    frameworks = list(dict.fromkeys(row["framework"] for row in controls))
    unknown = [f for f in frameworks if f not in catalogues]
    if unknown:
        raise OscalError(f"crosswalk rows name unknown framework(s) {unknown}")

    started = _timestamp(result.get("started_at"), view["sealed_at"], result.get("finished_at"))
    finished = _timestamp(result.get("finished_at"), view["sealed_at"], result.get("started_at"))
    modified = _timestamp(view["sealed_at"], result.get("finished_at"), result.get("started_at"))
    change = result.get("change") if isinstance(result.get("change"), dict) else {}
    run_id = _line(result.get("run_id"), "unknown-run")

    bundle_res = _uuid(digest, "resource", "bundle")
    plan_res = _uuid(digest, "resource", "assessment-plan")
    hexdigest = digest.split(":", 1)[1]
    rlinks = [
        {
            "href": f"{bundle_href}#/dsseEnvelope/payload" if view["sealed"] else bundle_href,
            "media-type": "application/vnd.in-toto+json" if view["sealed"] else "application/json",
            "hashes": [{"algorithm": "SHA-256", "value": hexdigest}],
        }
    ]
    if bundle_file_sha256:
        rlinks.append(
            {
                "href": bundle_href,
                "media-type": "application/json",
                "hashes": [{"algorithm": "SHA-256", "value": bundle_file_sha256}],
            }
        )
    bundle_props = [
        _prop("seal-digest", digest),
        _prop("run-id", run_id),
        _prop("sealed", str(view["sealed"]).lower()),
    ]
    if view["ledger_index"] is not None:
        bundle_props.append(_prop("ledger-index", view["ledger_index"]))
    if view["keyid"]:
        bundle_props.append(_prop("signing-keyid", view["keyid"]))
    resources: list[dict[str, Any]] = [
        {
            "uuid": bundle_res,
            "title": f"AEGIS evidence bundle, run {run_id}",
            "description": (
                "The sealed evidence bundle. The SHA-256 on the payload link is the seal digest: SHA-256 over the "
                "DSSE payload (the in-toto Statement in RFC 8785 canonical JSON), covered by the Ed25519 signature "
                "and the ledger leaf. Verify with `manage.py verify_bundle` or evidence/verify_standalone.py."
                if view["sealed"]
                else "An UNSEALED preflight result (result.json): the SHA-256 is over its RFC 8785 canonical JSON. "
                "It is not tamper-evident evidence until it is sealed."
            ),
            "props": bundle_props,
            "rlinks": rlinks,
        },
        {
            "uuid": plan_res,
            "title": "AEGIS preflight pipeline (implicit assessment plan)",
            "description": (
                "No separate OSCAL assessment plan exists: the plan is AEGIS's fixed pipeline, the same for every "
                "change - guards, static analysis with FRR's own parser, a twin of real FRR daemons in network "
                "namespaces, state diff, invariants, rollback rehearsal, risk rubric, human approval, seal. "
                "See docs/compliance.md and docs/result-format.md."
            ),
        },
    ]
    catalogue_res = {}
    for fid in frameworks:
        fw = catalogues[fid]
        catalogue_res[fid] = _uuid(digest, "resource", "catalogue", fid)
        resources.append(
            {
                "uuid": catalogue_res[fid],
                "title": f"{fw.title} ({fw.version})",
                "props": [_prop("framework", fid)],
                "citation": {"text": _line(fw.source)},
            }
        )

    results = []
    for fid in frameworks:
        rows = [r for r in controls if r["framework"] == fid]
        results.append(
            _result_for(fid, rows, digest, bundle_res, catalogue_res[fid], result, started, finished)
        )

    title = _line(change.get("title"), "untitled change")
    # Who ran the change (AU-10): the operator recorded in the seal, as an OSCAL party.
    people: dict[str, Any] = {}
    if view["operator"]:
        operator_uuid = _uuid(digest, "party", "operator")
        people = {
            "roles": [{"id": "operator", "title": "AEGIS operator who submitted and ran the change"}],
            "parties": [{"uuid": operator_uuid, "type": "person", "name": _line(view["operator"])}],
            "responsible-parties": [{"role-id": "operator", "party-uuids": [operator_uuid]}],
        }
    return {
        "assessment-results": {
            "uuid": _uuid(digest, "assessment-results"),
            "metadata": {
                "title": f"AEGIS preflight assessment: {title} (run {run_id})",
                "last-modified": modified,
                "version": digest,
                "oscal-version": OSCAL_VERSION,
                "props": [
                    _prop("verdict", result.get("verdict")),
                    _prop("mapping-basis", "judgement"),
                ],
                **people,
                "remarks": JUDGEMENT_CAVEAT,
            },
            "import-ap": {
                "href": f"#{plan_res}",
                "remarks": "Implicit plan: AEGIS's fixed preflight pipeline (back-matter resource).",
            },
            "results": results,
            "back-matter": {"resources": resources},
        }
    }


_ROW_KEYS = (
    "framework",
    "control_id",
    "title",
    "meaning",
    "artifact",
    "state",
    "why",
    "text_marking",
    "source_note",
    "oscal_id",
)


def _rows_check(rows: Any) -> None:
    # Rows sealed in an older bundle may predate a key; say so instead of failing half-way.
    if not isinstance(rows, list):
        raise OscalError("crosswalk rows must be a list of objects")
    for i, row in enumerate(rows):
        missing = [k for k in _ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise OscalError(
                f"crosswalk row {i} lacks {', '.join(missing)} (rows sealed by an older AEGIS?): "
                "map afresh with `oscal_export --frameworks ...`"
            )
        if row["state"] not in STATES:
            raise OscalError(
                f"crosswalk row {i} has unknown state {row['state']!r}; expected one of {', '.join(STATES)}"
            )


def _result_for(
    fid: str,
    rows: list[dict],
    digest: str,
    bundle_res: str,
    catalogue_res: str,
    result: dict,
    started: str,
    finished: str,
) -> dict[str, Any]:
    fw = catalogues_load()[fid]
    observations: dict[str, dict[str, Any]] = {}
    for row in rows:
        artifact = row["artifact"]
        if artifact in observations:
            continue
        observations[artifact] = {
            "uuid": _uuid(digest, fid, "observation", artifact),
            "title": _line(row.get("artifact_title") or artifact),
            "description": f"{row['state'].replace('_', ' ')}: {row['why']}",
            "props": [_prop("artifact", artifact), _prop("aegis-state", row["state"])],
            "methods": [_METHODS.get(artifact, "EXAMINE")],
            "types": ["control-objective"],
            "relevant-evidence": [
                {
                    "href": f"#{bundle_res}",
                    "description": f"Bundle fields: {_line(row.get('evidence'), artifact)}.",
                }
            ],
            "collected": finished,
        }
    findings = []
    for summary in control_states(rows):
        if summary["state"] == NOT_APPLICABLE:
            continue  # OSCAL has no "not applicable" finding state; the observation says why
        state, reason = _STATUS[summary["state"]]
        deciding = [r for r in summary["rows"] if r["state"] == summary["state"]]
        aspects = sorted({r["aspect"] for r in summary["rows"] if r.get("aspect")})
        status: dict[str, str] = {"state": state, "reason": reason}
        if summary["state"] == PENDING:
            status["remarks"] = "AEGIS state: pending. " + deciding[0]["why"]
        findings.append(
            {
                "uuid": _uuid(digest, fid, "finding", summary["control_id"]),
                "title": f"{summary['control_id']} {summary['title']}",
                "description": " ".join(
                    f"[{r['artifact']}: {r['state']}] {r['why']}" for r in summary["rows"]
                ),
                "props": [
                    _prop("control-id", summary["control_id"]),
                    _prop("aegis-state", summary["state"]),
                    _prop("text-marking", summary["text_marking"]),
                    _prop("mapping-basis", "judgement"),
                ],
                "target": {
                    "type": "objective-id",
                    "target-id": f"{summary['oscal_id']}_obj",
                    "status": status,
                },
                "related-observations": [
                    {"observation-uuid": observations[r["artifact"]]["uuid"]} for r in summary["rows"]
                ],
                "remarks": (
                    f"{summary['meaning']} Source: {summary['source_note']}."
                    + (f" Aspects: {'; '.join(aspects)}." if aspects else "")
                ),
            }
        )
    control_ids = list(dict.fromkeys(summary["oscal_id"] for summary in control_states(rows)))
    twin = result.get("twin") if isinstance(result.get("twin"), dict) else {}
    risk = result.get("risk") if isinstance(result.get("risk"), dict) else {}
    props = [
        _prop("framework", fid),
        _prop("verdict", result.get("verdict")),
        _prop("run-id", result.get("run_id")),
        _prop("twin-tier", twin.get("tier") or "none"),
        _prop("risk-tier", risk.get("tier") or "none"),
    ]
    return {
        "uuid": _uuid(digest, fid, "result"),
        "title": f"{fw.title}: preflight run {_line(result.get('run_id'))}",
        "description": (
            f"Controls of {fw.title} ({fw.version}) that this run's evidence speaks to, with their state for this "
            f"change. Verdict: {_line(result.get('verdict'))}. {JUDGEMENT_CAVEAT}"
        ),
        "start": started,
        "end": finished,
        "props": props,
        "links": [{"href": f"#{bundle_res}", "rel": "evidence"}],
        "reviewed-controls": {
            "links": [{"href": f"#{catalogue_res}", "rel": "reference"}],
            "control-selections": [{"include-controls": [{"control-id": cid} for cid in control_ids]}],
        },
        "observations": list(observations.values()),
        **({"findings": findings} if findings else {}),
    }


# --------------------------------------------------------------------------- validation


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict) -> Any:
    # Same as jsonschema's own `pattern`, with the `regex` module so \p{L} and \p{N} work.
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=1)
def _validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.extend(Draft7Validator, {"pattern": _pattern})
    return cls(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


def oscal_errors(document: Any) -> list[str]:
    """Schema errors of `document` against the vendored OSCAL assessment-results schema, as
    'path: message' lines (empty when valid)."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def oscal_check(document: Any) -> None:
    """Raise OscalError listing the first schema errors when `document` is not valid OSCAL."""
    errors = oscal_errors(document)
    if errors:
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        raise OscalError("not valid OSCAL assessment-results: " + "; ".join(errors[:5]) + more)
