"""The crosswalk: which controls each evidence artifact of a run speaks to, and their state.

`controls_for(result, frameworks)` reads the result document of one preflight run
(docs/result-format.md) and returns one row per (control, artifact) pair for the chosen
frameworks, with the state of that control *for this run*, computed from the actual result:

- ``satisfied``      the artifact is in the run and its outcome meets the control
                     (e.g. the twin ran on real FRR and converged: CM-3(2) test before implementation).
- ``not_satisfied``  the artifact shows the control is NOT met for this change (twin did not
                     converge, rollback not verified, invariant violated, approval refused or by
                     the operator). Such a change is blocked, or must not be promoted.
- ``pending``        the control is met only by a later step that has not happened yet
                     (human approval of a clean run, sealing, promotion and production read-back).
- ``not_applicable`` the artifact does not exist for this run for a reason that is not a failure
                     (no LLM was used; nothing to approve or promote for a blocked change).

Which artifact maps to which control is data (`compliance/data/crosswalk.yaml`) and every
mapping is AEGIS's judgement, not an official crosswalk; rows say so in `mapping_basis`.
The state rules are code below, one function per artifact. Django-free: frameworks are
passed in (the web shell defaults them from settings.AEGIS_FRAMEWORKS).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from aegis_base.core.policy import DEFAULT_HIGH_RISK_APPROVERS, approvals_required
from compliance.catalogues import DATA_DIR, CatalogueError, catalogues_load, frameworks_check, yaml_file_load

SATISFIED = "satisfied"
NOT_SATISFIED = "not_satisfied"
PENDING = "pending"
NOT_APPLICABLE = "not_applicable"
STATES = (SATISFIED, NOT_SATISFIED, PENDING, NOT_APPLICABLE)

RESULT_FORMAT = "aegis.preflight.result/v1"
CROSSWALK_FILE = DATA_DIR / "crosswalk.yaml"
MAPPING_BASES = {
    "judgement": "AEGIS's judgement, not an official crosswalk",
    "official": "published by the framework's owner",
}

_ARTIFACT_KEYS = {"id", "title", "evidence", "maps"}
_MAP_KEYS = {"control", "aspect", "basis"}


class CrosswalkError(ValueError):
    """The result document cannot be read as a preflight result. The message says what to fix."""


@dataclass(frozen=True)
class Mapping:
    framework: str
    control_id: str
    aspect: str
    basis: str


@dataclass(frozen=True)
class Artifact:
    id: str
    title: str
    evidence: str  # the result-document keys the artifact is read from
    maps: tuple[Mapping, ...]


@dataclass
class RunContext:
    """What the rules read, extracted once from the result (plus approvals and seal)."""

    result: dict[str, Any]
    approvals: list[dict[str, Any]]
    operator: str | None
    seal: dict[str, Any] | None
    high_risk_approvers: int = DEFAULT_HIGH_RISK_APPROVERS

    @property
    def verdict(self) -> str | None:
        return self.result.get("verdict")

    def section(self, key: str) -> dict[str, Any]:
        value = self.result.get(key)
        return value if isinstance(value, dict) else {}

    def reasons_text(self, limit: int = 2) -> str:
        reasons = [r for r in self.result.get("reasons") or [] if isinstance(r, dict)]
        text = "; ".join(str(r.get("message") or r.get("code")) for r in reasons[:limit])
        return text + (f" (+{len(reasons) - limit} more)" if len(reasons) > limit else "")


Rule = Callable[[RunContext], tuple[str, str]]


# --------------------------------------------------------------------------- rules, one per artifact


def _rule_change_record(ctx: RunContext) -> tuple[str, str]:
    change = ctx.section("change")
    devices = change.get("devices") if isinstance(change.get("devices"), dict) else {}
    if not change or not devices:
        return NOT_SATISFIED, "the result carries no change record (title, description, devices)."
    if not str(change.get("title") or "").strip() or not str(change.get("description") or "").strip():
        return (
            NOT_SATISFIED,
            "the change has no title or no description: the reason for the change is not recorded.",
        )
    return SATISFIED, (
        f'change "{change["title"]}" is recorded with its description and the config for '
        f"{len(devices)} device(s) ({', '.join(sorted(devices))}), source: {change.get('source', 'unknown')}."
    )


_EXPECT_KEYS = (
    "prefixes_added",
    "prefixes_removed",
    "prefixes_changed",
    "sessions_removed",
    "sessions_added",
)


def _rule_expected_outcome(ctx: RunContext) -> tuple[str, str]:
    expect = ctx.section("change").get("expect")
    if not isinstance(expect, dict):
        return NOT_SATISFIED, "the change records no expected effects (`expect`)."
    items = 0
    for key in _EXPECT_KEYS:
        value = expect.get(key)
        # prefixes_* are {node: [prefix, ...]}, sessions_* are [{node, peer}, ...]
        if isinstance(value, dict):
            items += sum(len(v) if isinstance(v, list) else 1 for v in value.values())
        elif isinstance(value, list):
            items += len(value)
    declared = expect.get("declared", items > 0)
    if not declared:
        return NOT_SATISFIED, (
            "the change does not declare its expected effects (`expect`): purpose and scope are recorded, "
            "the expected outcome is not, so the twin could only check that nothing was lost."
        )
    return (
        SATISFIED,
        f"the change declares its expected effects ({items} prefix/session item(s)) before it is tested.",
    )


def _twin_not_run_why(ctx: RunContext) -> str:
    errors = [
        f
        for f in ctx.result.get("static_findings") or []
        if isinstance(f, dict) and f.get("severity") == "error"
    ]
    if errors:
        return f"the twin did not run: static analysis blocked the change first ({len(errors)} error(s))."
    reasons = ctx.reasons_text()
    return "the twin did not run" + (f": {reasons}." if reasons else ".")


def _simulated(ctx: RunContext, what: str) -> tuple[str, str] | None:
    """Twin-derived evidence from the seeded simulator is never evidence (DESIGN: never promotable)."""
    twin = ctx.section("twin")
    if twin and twin.get("tier") != "real":
        return NOT_SATISFIED, (
            f"{what} came from the {twin.get('tier', 'unknown')} twin ({twin.get('backend', '?')} backend), "
            "not from real FRR daemons: simulated evidence never counts."
        )
    return None


def _rule_impact_analysis(ctx: RunContext) -> tuple[str, str]:
    risk = ctx.section("risk")
    diff = ctx.section("diff")
    if not diff:
        return NOT_SATISFIED, "no impact analysis: " + _twin_not_run_why(ctx)
    simulated = _simulated(ctx, "the impact analysis")
    if simulated:
        return simulated
    if not risk.get("tier"):
        return NOT_SATISFIED, "the state diff is present but no risk tier was assessed."
    nodes = diff.get("nodes") if isinstance(diff.get("nodes"), dict) else {}
    touched = sorted(n for n, d in nodes.items() if isinstance(d, dict) and any(d.values()))
    return SATISFIED, (
        f"impact measured in the twin: changes on {len(touched)} node(s)"
        f"{' (' + ', '.join(touched) + ')' if touched else ''}, "
        f"{len(diff.get('reachability_lost') or [])} reachability pair(s) lost; "
        f"risk tier {risk['tier']} by {risk.get('rubric_version', 'an unnamed rubric')}."
    )


def _rule_static_analysis(ctx: RunContext) -> tuple[str, str]:
    findings = ctx.result.get("static_findings")
    if not isinstance(findings, list):
        return NOT_SATISFIED, "static analysis did not run (no static_findings in the result)."
    errors = [f for f in findings if isinstance(f, dict) and f.get("severity") == "error"]
    warnings = [f for f in findings if isinstance(f, dict) and f.get("severity") == "warning"]
    if errors:
        first = errors[0]
        return NOT_SATISFIED, (
            f"static analysis found {len(errors)} error(s), first on {first.get('device', '?')} "
            f"line {first.get('line_no', '?')}: {first.get('message', '')}".rstrip(": ")
            + "."
        )
    return (
        SATISFIED,
        f"FRR's parser and the semantic checks passed with no errors ({len(warnings)} warning(s)).",
    )


def _rule_baseline_and_diff(ctx: RunContext) -> tuple[str, str]:
    snapshots = ctx.section("snapshots")
    baseline = snapshots.get("baseline")
    diff = ctx.section("diff")
    if not isinstance(baseline, dict) or not baseline:
        return NOT_SATISFIED, "no baseline snapshot: " + _twin_not_run_why(ctx)
    if not diff:
        return NOT_SATISFIED, "a baseline snapshot was taken but no after-change diff exists."
    simulated = _simulated(ctx, "the baseline snapshot")
    if simulated:
        return simulated
    nodes = baseline.get("nodes") if isinstance(baseline.get("nodes"), dict) else {}
    pinned = ctx.section("lab").get("node_configs")
    return SATISFIED, (
        f"baseline snapshot of {len(nodes)} node(s) (RIBs, sessions, adjacencies, reachability) "
        "and the per-node diff after the change are in the bundle"
        + (
            f"; the {len(pinned)} node configs are pinned by SHA-256."
            if isinstance(pinned, dict) and pinned
            else "."
        )
    )


# Reason codes of preflight/core/verdict.py that mean the twin test itself did not complete.
_TWIN_FAILURE_CODES = ("SPAWN_FAILED", "BASELINE_NOT_CONVERGED", "APPLY_REJECTED", "CHANGE_NOT_CONVERGED")


def _converge_failure(ctx: RunContext) -> str | None:
    for reason in ctx.result.get("reasons") or []:
        if isinstance(reason, dict) and reason.get("code") in _TWIN_FAILURE_CODES:
            return f"the twin test did not complete ({reason['code']}): {reason.get('message', '')}".rstrip(
                ": "
            )
    twin = ctx.section("twin")
    for key, label in (("baseline_convergence_s", "the baseline"), ("change_convergence_s", "the change")):
        if not isinstance(twin.get(key), (int, float)):
            return f"the twin did not converge after {label} within its bound"
    return None


def _rule_twin_test(ctx: RunContext) -> tuple[str, str]:
    twin = ctx.section("twin")
    if not twin or not ctx.section("snapshots"):
        return NOT_SATISFIED, "the change was not tested: " + _twin_not_run_why(ctx)
    if twin.get("tier") != "real":
        return NOT_SATISFIED, (
            f"the twin ran on the {twin.get('tier', 'unknown')} tier ({twin.get('backend', '?')} backend): "
            "not real FRR, so it is not a test environment that models production; never promotable."
        )
    failure = _converge_failure(ctx)
    if failure:
        return NOT_SATISFIED, failure + "."
    load_errors = twin.get("load_errors") or []
    # Lines of the lab's own configs that FRR refused do not block, but the twin then differs from
    # the lab in exactly those lines; an examiner checking "models the baseline" must see that.
    note = (
        f" Note: FRR refused {len(load_errors)} line(s) of the lab's own configs at load (twin.load_errors), "
        "so the twin differs from the lab there."
        if load_errors
        else ""
    )
    return SATISFIED, (
        f"tested in a separate twin of real FRR {twin.get('frr_version', '?')} daemons "
        f"({twin.get('backend', '?')} backend, {twin.get('nodes', '?')} nodes, {twin.get('links', '?')} links): "
        "baseline converged in "
        f"{twin['baseline_convergence_s']:.1f} s, the change in {twin['change_convergence_s']:.1f} s." + note
    )


def _rule_twin_verification(ctx: RunContext) -> tuple[str, str]:
    diff = ctx.section("diff")
    if not diff:
        return NOT_SATISFIED, "no verification results: " + _twin_not_run_why(ctx)
    if ctx.section("twin").get("tier") != "real":
        return _simulated(ctx, "the verification") or (NOT_SATISFIED, "the twin tier is not stated.")
    # Undeclared losses block (verdict rules); undeclared gains only raise the risk tier.
    undeclared = diff.get("undeclared") or []
    losses = [u for u in undeclared if not isinstance(u, dict) or u.get("loss", True)]
    gains = len(undeclared) - len(losses)
    invariants = [i for i in ctx.result.get("invariants") or [] if isinstance(i, dict)]
    failed = [i for i in invariants if not i.get("ok")]
    problems = []
    if losses:
        first = losses[0].get("message", losses[0]) if isinstance(losses[0], dict) else losses[0]
        problems.append(f"{len(losses)} loss(es) not declared in the change's expect (first: {first})")
    missing = diff.get("expected_missing") or []
    if missing:
        problems.append(f"{len(missing)} declared effect(s) did not happen in the twin (first: {missing[0]})")
    if failed:
        first = failed[0]
        problems.append(
            f"{len(failed)} of {len(invariants)} invariant(s) violated "
            f"(first: {first.get('kind', '?')}: {first.get('detail', '')})"
        )
    if problems:
        return NOT_SATISFIED, "; ".join(problems) + "."
    noted = f" ({gains} undeclared gain(s) raised the risk tier)" if gains else ""
    if not invariants:
        return SATISFIED, (
            f"no undeclared loss of route, session or reachability in the twin{noted}; "
            "the lab declares no invariants."
        )
    return SATISFIED, f"no undeclared loss in the twin{noted} and all {len(invariants)} invariant(s) hold."


def _rule_twin_vs_production(ctx: RunContext) -> tuple[str, str]:
    twin = ctx.section("twin")
    if not twin:
        return (
            NOT_SATISFIED,
            "no twin ran, so there is no test-vs-production statement: " + _twin_not_run_why(ctx),
        )
    diffs = twin.get("differences_from_production")
    if not isinstance(diffs, list) or not diffs:
        return NOT_SATISFIED, "the bundle does not state how the twin differs from production."
    return (
        SATISFIED,
        f'the bundle states {len(diffs)} difference(s) between the twin and production, e.g. "{diffs[0]}".',
    )


def _rule_rollback(ctx: RunContext) -> tuple[str, str]:
    rollback = ctx.section("rollback")
    if not rollback:
        return NOT_SATISFIED, "rollback was not rehearsed: " + _twin_not_run_why(ctx)
    stuck = [
        r
        for r in ctx.result.get("reasons") or []
        if isinstance(r, dict) and r.get("code") == "ROLLBACK_NOT_CONVERGED"
    ]
    simulated = _simulated(ctx, "the rollback rehearsal")
    if simulated:
        return simulated
    if stuck:
        return NOT_SATISFIED, f"rollback did not settle in the twin: {stuck[0].get('message', '')}".rstrip(
            ": "
        ) + "."
    if rollback.get("verified") is True:
        lines = rollback.get("lines") if isinstance(rollback.get("lines"), dict) else {}
        count = sum(len(v) for v in lines.values() if isinstance(v, list))
        return SATISFIED, (
            f"rollback rehearsed in the twin: {count} inverse line(s) on {len(lines)} device(s) "
            "restored a state equal to the baseline snapshot."
        )
    mismatch = rollback.get("mismatch") or []
    return NOT_SATISFIED, (
        "rollback did NOT restore the baseline in the twin"
        + (f" ({len(mismatch)} difference(s), first: {mismatch[0]})" if mismatch else "")
        + "."
    )


def _approval_decision(approval: dict[str, Any]) -> str:
    decision = str(approval.get("decision") or approval.get("state") or "").lower()
    if decision in ("approve", "approved", "approval"):
        return "approved"
    if decision in ("reject", "rejected", "disapprove", "disapproved", "denied"):
        return "rejected"
    return decision or "unknown"


def _approver(approval: dict[str, Any]) -> str:
    for key in ("approver", "approver_username", "by", "user"):
        if approval.get(key):
            return str(approval[key])
    return "?"


def _rule_approval(ctx: RunContext) -> tuple[str, str]:
    if ctx.verdict == "blocked":
        return (
            NOT_APPLICABLE,
            "the run is blocked: a blocked change is never promotable, so no approval is sought.",
        )
    decisions = [(a, _approval_decision(a)) for a in ctx.approvals]
    rejected = [a for a, d in decisions if d == "rejected"]
    if rejected:
        # aegis_base/core/policy.py rule 4: a rejection is final for the bundle.
        return NOT_SATISFIED, f"rejected by {_approver(rejected[0])}: the change must not be implemented."
    approved = [a for a, d in decisions if d == "approved"]
    self_approved = [a for a in approved if ctx.operator and _approver(a) == ctx.operator]
    independent: dict[str, dict] = {}
    for a in approved:
        if a not in self_approved:
            independent.setdefault(_approver(a), a)  # distinct approvers: a second click counts once
    tier = ctx.section("risk").get("tier")
    # The same rule the promotion gate enforces: 0 for ship_ready, 1, or N for high risk.
    required = approvals_required(str(ctx.verdict), tier, high_risk_approvers=ctx.high_risk_approvers)
    names = ", ".join(f"{who}" + (f" at {a['at']}" if a.get("at") else "") for who, a in independent.items())
    bound = all(a.get("bundle_digest") or a.get("subject_digest") for a in independent.values())
    binding = "; each approval names the bundle digest it approves" if independent and bound else ""
    if required == 0:
        return SATISFIED, (
            f"ship_ready: risk tier {tier or '?'} by {ctx.section('risk').get('rubric_version', 'the risk rubric')}, "
            "which the site's approval policy pre-authorizes as a standard change, so no sign-off is required"
            + (f"; also approved by {names}" if independent else "")
            + "."
        )
    if len(independent) >= required:
        return SATISFIED, (
            f"approved by {names} ({len(independent)} of {required} required for a {tier or '?'}-risk change), "
            f"none of them the operator ({ctx.operator or 'unknown'}){binding}."
        )
    if self_approved and not independent:
        return NOT_SATISFIED, (
            f"the only approval is by the run's own operator ({ctx.operator}): separation of duties refuses it."
        )
    return PENDING, (
        f"awaiting {required - len(independent)} more approval(s) by approvers other than the operator "
        f"({len(independent)} of {required} required for a {tier or '?'}-risk change)."
    )


def _rule_seal(ctx: RunContext) -> tuple[str, str]:
    seal = ctx.seal
    if seal is None:
        return PENDING, (
            "met once the bundle is sealed (SHA-256 over RFC 8785 canonical JSON, Ed25519 DSSE signature, "
            "ledger inclusion proof); an unsealed result is not yet evidence."
        )
    digest = str(seal.get("digest") or "")
    index = seal.get("ledger_index")
    if not digest:
        return SATISFIED, (
            "this crosswalk is part of the sealed bundle: SHA-256 over canonical JSON, Ed25519 DSSE signature and "
            "ledger inclusion proof; check them with `manage.py verify_bundle`."
        )
    return SATISFIED, (
        f"sealed: digest {digest}, Ed25519 DSSE signature"
        + (f", ledger leaf {index}" if index is not None else "")
        + "; check with `manage.py verify_bundle`."
    )


def _line_end(text: str) -> str:
    return str(text).strip().rstrip(".") + "."


def _in_policy(address: str, policy: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return any(ip in net for net in policy if net.version == ip.version)


def _rule_egress_record(ctx: RunContext) -> tuple[str, str]:
    egress = ctx.result.get("egress")
    if not isinstance(egress, dict) or "policy" not in egress:
        return NOT_SATISFIED, "the result carries no egress record: how egress was held is not shown."
    policy = []
    for cidr in egress.get("policy") or []:
        try:
            policy.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            continue
    contacted = egress.get("contacted") or []
    outside = []
    for entry in contacted:
        if isinstance(entry, dict):
            if entry.get("refused"):
                continue  # a refusal is the policy holding, not a breach
            address = str(entry.get("address") or entry.get("host") or "")
        else:
            address = str(entry)
        if _in_policy(address, policy) is False:
            outside.append(address)
    if outside:
        return (
            NOT_SATISFIED,
            f"{len(outside)} destination(s) outside the egress policy were contacted: {', '.join(outside)}.",
        )
    return SATISFIED, (
        f"egress held to {len(policy)} allowed network(s); {len(contacted)} destination(s) contacted, "
        "none outside the policy"
        + (f"; {_line_end(egress['twin_isolation'])}" if egress.get("twin_isolation") else ".")
    )


_LLM_FIELDS = ("endpoint", "model", "weights_sha256", "prompt", "raw")


def _rule_llm_provenance(ctx: RunContext) -> tuple[str, str]:
    llm = ctx.result.get("llm")
    source = ctx.section("change").get("source")
    if not llm and source != "llm":
        return NOT_APPLICABLE, f"no LLM proposed this change (source: {source or 'unknown'})."
    if not isinstance(llm, dict):
        return NOT_SATISFIED, "the change came from an LLM but the result has no LLM provenance."
    missing = [f for f in _LLM_FIELDS if not llm.get(f)]
    if missing:
        return NOT_SATISFIED, f"LLM provenance is incomplete: missing {', '.join(missing)}."
    return SATISFIED, (
        f"proposed by model {llm['model']} (weights sha256 {str(llm['weights_sha256'])[:16]}…) at {llm['endpoint']}; "
        "prompt and raw answer are in the bundle, and the proposal passed the same checks as a human's."
    )


def _rule_post_implementation(ctx: RunContext) -> tuple[str, str]:
    if ctx.verdict == "blocked":
        return NOT_APPLICABLE, "the run is blocked: the change is not to be implemented."
    return PENDING, (
        "a twin run is not evidence of implementation: this needs the sealed promotion record and a "
        "read-back of the production device after the change."
    )


RULES: dict[str, Rule] = {
    "change_record": _rule_change_record,
    "expected_outcome": _rule_expected_outcome,
    "impact_analysis": _rule_impact_analysis,
    "static_analysis": _rule_static_analysis,
    "baseline_and_diff": _rule_baseline_and_diff,
    "twin_test": _rule_twin_test,
    "twin_verification": _rule_twin_verification,
    "twin_vs_production": _rule_twin_vs_production,
    "rollback": _rule_rollback,
    "approval": _rule_approval,
    "seal": _rule_seal,
    "egress_record": _rule_egress_record,
    "llm_provenance": _rule_llm_provenance,
    "post_implementation": _rule_post_implementation,
}


# --------------------------------------------------------------------------- the mapping data


def crosswalk_load(path: str | Path = CROSSWALK_FILE) -> tuple[Artifact, ...]:
    """Read and validate the artifact -> controls mapping against the catalogues and the rules."""
    path = Path(path)
    data = yaml_file_load(path)
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), list):
        raise CatalogueError(f"{path}: must be a mapping with an `artifacts` list")
    catalogues = catalogues_load()
    artifacts: list[Artifact] = []
    for i, entry in enumerate(data["artifacts"]):
        where = f"{path}: artifacts[{i}]"
        if not isinstance(entry, dict):
            raise CatalogueError(f"{where}: must be a mapping")
        aid = entry.get("id")
        where = f"{path}: artifacts[{i}] ({aid})"
        unknown = set(entry) - _ARTIFACT_KEYS
        if unknown:
            raise CatalogueError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ARTIFACT_KEYS)}"
            )
        if aid not in RULES:
            raise CatalogueError(f"{where}: no state rule for artifact {aid!r}; known: {', '.join(RULES)}")
        if any(a.id == aid for a in artifacts):
            raise CatalogueError(f"{where}: duplicate artifact {aid!r}")
        maps_raw = entry.get("maps")
        if not isinstance(maps_raw, dict) or not maps_raw:
            raise CatalogueError(f"{where}: `maps` must be a mapping framework -> list of controls")
        maps: list[Mapping] = []
        for fid, items in maps_raw.items():
            if fid not in catalogues:
                raise CatalogueError(f"{where}: unknown framework {fid!r}; known: {', '.join(catalogues)}")
            if not isinstance(items, list) or not items:
                raise CatalogueError(f"{where}: {fid}: must be a non-empty list of {{control: ...}}")
            for j, item in enumerate(items):
                at = f"{where}: {fid}[{j}]"
                if not isinstance(item, dict) or set(item) - _MAP_KEYS:
                    raise CatalogueError(
                        f"{at}: must be a mapping with keys {sorted(_MAP_KEYS)}, got {item!r}"
                    )
                cid = item.get("control")
                if not isinstance(cid, str):
                    raise CatalogueError(
                        f'{at}: `control` must be a string (quote ids such as "6.5.1"), got {cid!r}'
                    )
                if cid not in catalogues[fid].controls:
                    raise CatalogueError(
                        f"{at}: control {cid!r} is not in {catalogues[fid].path}; "
                        f"known: {', '.join(catalogues[fid].controls)}"
                    )
                basis = item.get("basis", "judgement")
                if basis not in MAPPING_BASES:
                    raise CatalogueError(
                        f"{at}: `basis` must be one of {sorted(MAPPING_BASES)}, got {basis!r}"
                    )
                maps.append(Mapping(fid, cid, str(item.get("aspect") or ""), basis))
        artifacts.append(
            Artifact(str(aid), str(entry.get("title") or aid), str(entry.get("evidence") or ""), tuple(maps))
        )
    missing = set(RULES) - {a.id for a in artifacts}
    if missing:
        raise CatalogueError(f"{path}: no mapping for artifact(s) {sorted(missing)}")
    return tuple(artifacts)


@lru_cache(maxsize=1)
def _crosswalk() -> tuple[Artifact, ...]:
    return crosswalk_load()


# --------------------------------------------------------------------------- the public function


VERDICTS = ("blocked", "needs_approval", "ship_ready")


def _context(
    result: Any,
    approvals: list[dict] | None,
    operator: str | None,
    seal: dict | bool | None,
    high_risk_approvers: int | None,
) -> RunContext:
    if not isinstance(result, dict):
        raise CrosswalkError(
            f"the result must be a JSON object (the preflight result document), got {type(result).__name__}"
        )
    fmt = result.get("format")
    if fmt is not None and fmt != RESULT_FORMAT:
        raise CrosswalkError(f"unsupported result format {fmt!r}; expected {RESULT_FORMAT!r}")
    if "verdict" not in result:
        raise CrosswalkError("the result has no `verdict`: pass the whole result document (result.json)")
    if result["verdict"] not in VERDICTS:
        raise CrosswalkError(f"result.verdict {result['verdict']!r} is not one of {', '.join(VERDICTS)}")
    if high_risk_approvers is not None and (
        not isinstance(high_risk_approvers, int) or high_risk_approvers < 1
    ):
        raise CrosswalkError(
            f"high_risk_approvers must be a whole number of at least 1, got {high_risk_approvers!r}"
        )
    if approvals is None:
        approvals = result.get("approvals") or []
    if not isinstance(approvals, list) or not all(isinstance(a, dict) for a in approvals):
        raise CrosswalkError(
            'approvals must be a list of objects like {"approver": ..., "decision": "approved"}'
        )
    if seal is True:
        seal = {}
    elif seal is False or seal is None:
        seal = result.get("seal") if isinstance(result.get("seal"), dict) else None
    return RunContext(
        result=result,
        approvals=approvals,
        operator=operator or result.get("operator"),
        seal=seal,
        high_risk_approvers=high_risk_approvers or DEFAULT_HIGH_RISK_APPROVERS,
    )


def controls_for(
    result: dict,
    frameworks: list[str],
    *,
    approvals: list[dict] | None = None,
    operator: str | None = None,
    seal: dict | bool | None = None,
    high_risk_approvers: int | None = None,
) -> list[dict]:
    """One row per (control, artifact) for `frameworks`, with this run's state and why.

    `approvals`: decisions so far, each ``{"approver": username, "decision": "approved"|"rejected",
    "at": iso-time}``; default ``result["approvals"]``. `operator`: the run's operator (default
    ``result["operator"]``), so a self-approval is shown as not satisfied. `seal`: ``{"digest",
    "ledger_index"}`` of the sealed bundle, or ``True`` when the rows are computed to be sealed
    inside the bundle; without it the integrity controls are ``pending``. `high_risk_approvers`:
    distinct approvers a high-risk change needs (settings.AEGIS_HIGH_RISK_APPROVERS; default 2),
    counted by the same rule as the promotion gate (aegis_base/core/policy.py).
    Raises UnknownFramework or CrosswalkError with a message that says what to fix.
    """
    chosen = frameworks_check(frameworks)
    ctx = _context(result, approvals, operator, seal, high_risk_approvers)
    catalogues = catalogues_load()
    artifacts = _crosswalk()
    states = {a.id: RULES[a.id](ctx) for a in artifacts}
    rows: list[dict] = []
    for fid in chosen:
        framework = catalogues[fid]
        order = {cid: n for n, cid in enumerate(framework.controls)}
        pairs = [(m, a) for a in artifacts for m in a.maps if m.framework == fid]
        pairs.sort(key=lambda p: order[p[0].control_id])  # stable: artifact order within a control
        for mapping, artifact in pairs:
            control = framework.controls[mapping.control_id]
            state, why = states[artifact.id]
            rows.append(
                {
                    "framework": fid,
                    "control_id": control.id,
                    "title": control.title,
                    "meaning": control.meaning,
                    "artifact": artifact.id,
                    "state": state,
                    "why": why,
                    # Added keys (CONTRACTS.md: add, never rename):
                    "artifact_title": artifact.title,
                    "evidence": artifact.evidence,
                    "aspect": mapping.aspect,
                    "mapping_basis": mapping.basis,
                    "text_marking": control.marking,
                    "source_note": control.source_note,
                    "oscal_id": control.oscal_id,
                }
            )
    return rows


_STATE_RANK = {NOT_SATISFIED: 3, PENDING: 2, SATISFIED: 1, NOT_APPLICABLE: 0}


def control_states(rows: list[dict]) -> list[dict]:
    """Roll rows up to one per control: the worst state of its artifacts (not_satisfied > pending >
    satisfied > not_applicable), with the artifacts behind it. For summaries and the OSCAL findings."""
    by_control: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["framework"], row["control_id"])
        entry = by_control.setdefault(
            key,
            {
                k: row[k]
                for k in (
                    "framework",
                    "control_id",
                    "title",
                    "meaning",
                    "text_marking",
                    "source_note",
                    "oscal_id",
                )
            }
            | {"state": NOT_APPLICABLE, "rows": []},
        )
        entry["rows"].append(row)
        if _STATE_RANK[row["state"]] > _STATE_RANK[entry["state"]]:
            entry["state"] = row["state"]
    return list(by_control.values())
