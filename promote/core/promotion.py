"""One promotion attempt, end to end: gate, drift, dry-run or live, verification, record.

`promotion_execute` is the plain function the shell (`manage.py promote`, the approver
screen, the API) calls. It takes plain data and connectors, never raises for a refusal or a
device failure, and always returns a promotion record for the ledger:

1. G1–G4 (`gate.py`). If any fails, no device is contacted.
2. Connect to every device of the inventory that the twin modelled; read its running config;
   drift check against the baseline config the bundle recorded. Any drift: refused.
3. dry-run (default): each changed device loads its candidate, FRR's parser checks it and
   `frr-reload.py --test` shows the delta; nothing is applied.
   live: the same dry-run on every changed device first (a parser error anywhere stops
   everything before anything is applied), then apply device by device, stopping at the
   first failure; then read state back from every device until it matches the twin's
   prediction or `verify_timeout` passes (post-implementation verification record).
4. Connections are always closed.

Approval tokens are consumed (single use) by a live attempt that passed the gate; a dry-run
consumes nothing, so an approver's token can be dry-run first and then used live once. The
shell passes `consume(jtis)`, which must record them atomically or raise (another promotion
got there first); it is called after every check and before the first device is changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from promote.connectors import Connector, ConnectorError, DeviceSpec, connector_for
from promote.core.approvals import ApproverKey
from promote.core.drift import DriftResult, drift_check, drift_settle_by_delta
from promote.core.gate import LIVE, BundleFacts, GateResult, gate_evaluate, gate_with_drift
from promote.core.record import promotion_record, record_digest, verification_record
from promote.core.verify import state_compare


class CandidateError(ValueError):
    """No safe full candidate config can be built for a device; the message says why."""


@dataclass
class PromotionOutcome:
    record: dict[str, Any]
    record_digest: str
    verification: dict[str, Any] | None
    consumed_jtis: list[str]
    gate: GateResult

    @property
    def outcome(self) -> str:
        return str(self.record["outcome"])


def bundle_baselines(facts: BundleFacts) -> dict[str, str]:
    """{node: config text the twin was built from}, found by digest among the bundle's lab files."""
    lab = facts.statement["predicate"]["inputs"]["lab"]
    by_digest = {entry.get("sha256"): entry.get("text") for entry in (lab.get("files") or {}).values()}
    out = {}
    for node, digest in (lab.get("node_configs") or {}).items():
        text = by_digest.get(str(digest).removeprefix("sha256:"))
        if isinstance(text, str):
            out[node] = text
    return out


def candidate_build(baseline: str, change: str) -> str:
    """Full target config = baseline + the change's lines, for additive changes.

    frr-reload.py merges a context that appears twice (e.g. a second `router bgp 65001`
    block), so appending works for lines that add. A line that removes (`no ...`) cannot be
    expressed in a full target config by appending; for such changes pass the twin's
    post-change running config as the candidate.
    """
    removing = [ln.strip() for ln in change.splitlines() if ln.strip().startswith("no ")]
    if removing:
        raise CandidateError(
            f"the change removes configuration ({removing[0]!r}); pass the twin's post-change "
            "running config as this device's candidate"
        )
    return baseline.rstrip("\n") + "\n!\n" + change.strip("\n") + "\n"


def _result(facts: BundleFacts) -> dict[str, Any]:
    return facts.statement["predicate"].get("result") or {}


def promotion_execute(
    *,
    actor: str,
    bundle: dict[str, Any],
    site_keys: dict[str, Ed25519PublicKey],
    log_keys: list[Ed25519PublicKey],
    approvals: Iterable[dict[str, Any]],
    approver_keys: dict[str, ApproverKey],
    used_jtis: Collection[str],
    devices: dict[str, DeviceSpec],
    live_requested: bool = False,
    site_allows_live: bool = False,
    high_risk_approvers: int = 2,
    ledger_origin: str | None = None,
    tlog_proof: str | None = None,
    latest_checkpoint: str | None = None,
    candidates: dict[str, str] | None = None,
    connect: Callable[[DeviceSpec], Connector] = connector_for,
    verify_timeout: float = 30.0,
    consume: Callable[[list[str]], None] | None = None,
    now: datetime | None = None,
) -> PromotionOutcome:
    """Run one promotion attempt (see the module docstring). Never raises for refusals."""
    now = now or datetime.now(UTC)
    gate = gate_evaluate(
        bundle=bundle,
        site_keys=site_keys,
        log_keys=log_keys,
        approvals=list(approvals),
        approver_keys=approver_keys,
        used_jtis=used_jtis,
        now=now,
        live_requested=live_requested,
        site_allows_live=site_allows_live,
        high_risk_approvers=high_risk_approvers,
        ledger_origin=ledger_origin,
        tlog_proof=tlog_proof,
        latest_checkpoint=latest_checkpoint,
    )
    facts = gate.facts
    digest = facts.digest if facts else bundle.get("digest") if isinstance(bundle, dict) else None
    run_id = facts.run_id if facts else None
    entries: dict[str, dict[str, Any]] = {}

    conns: dict[str, Connector] = {}

    def finish(
        outcome: str,
        reasons: list[str] | None = None,
        consumed: list[str] | None = None,
        verification: dict[str, Any] | None = None,
        g: GateResult = gate,
    ) -> PromotionOutcome:
        for n, conn in conns.items():
            # Every command AEGIS ran on the device, with its exit status, for the auditor.
            entries[n]["commands"] = list(getattr(conn, "transcript", []))
        rec = promotion_record(
            actor=actor,
            at=now,
            bundle_digest=digest,
            run_id=run_id,
            gate=g,
            outcome=outcome,
            devices=entries,
            reasons=reasons,
            consumed_jtis=consumed,
        )
        rd = record_digest(rec)
        if verification is not None:
            verification = verification_record(promotion_digest=rd, at=datetime.now(UTC), **verification)
        return PromotionOutcome(rec, rd, verification, list(consumed or []), g)

    if not gate.devices_allowed or facts is None:
        return finish("refused")

    result = _result(facts)
    changed = {n: t for n, t in ((result.get("change") or {}).get("devices") or {}).items() if str(t).strip()}
    baselines = bundle_baselines(facts)
    predicted = ((result.get("snapshots") or {}).get("after") or {}).get("nodes") or {}
    problems = [
        f"{n}: no device in the inventory for this changed node" for n in sorted(changed) if n not in devices
    ]
    problems += [
        f"{n}: the bundle holds no baseline config text for this node"
        for n in sorted(changed)
        if n not in baselines
    ]
    if problems:
        return finish("refused", gate.reasons + problems)
    # Every inventory device the twin modelled is read: drift anywhere makes the prediction stale.
    involved = sorted(n for n in devices if n in baselines)
    for n in involved:
        entries[n] = {"spec": devices[n].describe(), "changed": n in changed}

    used: list[str] = []  # approvals consumed once a live apply starts
    try:
        with ExitStack() as stack:
            drift: list[DriftResult] = []
            try:
                for n in involved:
                    conns[n] = stack.enter_context(connect(devices[n]))
                    running = conns[n].running_config()
                    d = drift_check(n, running, baseline_text=baselines[n])
                    if not d.ok and hasattr(conns[n], "config_delta"):
                        # Same config in another form (a hand-written lab)? Let FRR decide.
                        d = drift_settle_by_delta(d, *conns[n].config_delta(baselines[n]))
                    entries[n]["drift"] = d.as_dict()
                    drift.append(d)
            except ConnectorError as exc:
                return finish("refused", gate.reasons + [f"drift check could not read the device: {exc}"])
            gate = gate_with_drift(gate, drift)
            if not gate.passed:
                return finish("refused", g=gate)

            # The best candidate is the twin's own post-change running config (it also covers `no`
            # lines); the pipeline records it as twin.running_configs.after when it can.
            from_twin = ((result.get("twin") or {}).get("running_configs") or {}).get("after") or {}
            try:
                cands = {
                    n: (candidates or {}).get(n)
                    or from_twin.get(n)
                    or candidate_build(baselines[n], changed[n])
                    for n in sorted(changed)
                }
            except CandidateError as exc:
                return finish("refused", [str(exc)], g=gate)

            try:
                dry = {}
                for n, cand in cands.items():
                    dry[n] = conns[n].dry_run(cand)
                    entries[n]["dry_run"] = dry[n].as_dict()
            except ConnectorError as exc:
                return finish("failed", [f"dry-run: {exc}"], g=gate)
            bad = [
                f"{n}: candidate refused by FRR's parser: {'; '.join(r.syntax_errors)}"
                for n, r in dry.items()
                if not r.syntax_ok
            ]
            if gate.mode != LIVE:
                return finish("failed" if bad else "dry_run", bad or [], g=gate)
            if bad:
                return finish("refused", bad + ["nothing was applied"], g=gate)

            # Live: the approvals are used now, whatever happens on the devices. `consume` lets
            # the shell mark them used atomically (e.g. a unique row) before anything is applied,
            # so two concurrent promotions cannot both spend one approval.
            jtis = [a.jti for a in gate.approvals if a.decision == "approve"]
            if consume is not None:
                try:
                    consume(jtis)
                except Exception as exc:  # noqa: BLE001 - whatever the store raises means "not yours"
                    return finish(
                        "refused",
                        [f"G3: approval already used by another promotion ({exc}); nothing was applied"],
                        g=gate,
                    )
            consumed = used
            used.extend(jtis)
            for n, cand in cands.items():
                try:
                    res = conns[n].apply(cand)
                except ConnectorError as exc:
                    entries[n]["apply"] = {"applied": False, "error": str(exc)}
                    return finish(
                        "failed", [f"{n}: {exc}; devices after it were not touched"], consumed, g=gate
                    )
                entries[n]["apply"] = res.as_dict()
                if not res.applied or not res.saved:
                    return finish(
                        "failed", [f"{n}: {res.error}; devices after it were not touched"], consumed, g=gate
                    )

            verification = _verify(conns, predicted, verify_timeout)
            return finish("applied", [], consumed, verification, g=gate)
    except Exception as exc:  # noqa: BLE001 - every attempt must end in a record, never a traceback
        return finish(
            "failed", [f"unexpected error during promotion: {type(exc).__name__}: {exc}"], used, g=gate
        )


def _verify(conns: dict[str, Connector], predicted: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Read state from every device until it matches the twin's prediction, or time runs out."""
    start = time.monotonic()
    targets = {n: c for n, c in conns.items() if n in predicted}
    problems: dict[str, list[str]] = {}
    observed: dict[str, Any] = {}
    while True:
        for n, c in targets.items():
            try:
                observed[n] = c.state()
                problems[n] = state_compare(n, predicted[n], observed[n])
            except ConnectorError as exc:
                problems[n] = [f"{n}: state could not be read: {exc}"]
        if not any(problems.values()) or time.monotonic() - start > timeout:
            break
        time.sleep(1.0)  # routing protocols settle within a few update intervals
    devices = {
        n: {"ok": not problems[n], "problems": problems[n], "observed": observed.get(n)} for n in targets
    }
    if not targets:
        devices = {}
    return {
        "ok": bool(targets) and not any(problems.values()),
        "devices": devices,
        "waited_s": time.monotonic() - start,
    }
