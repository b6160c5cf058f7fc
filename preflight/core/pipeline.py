"""The preflight pipeline: one change, one lab, one deterministic verdict.

    precheck -> static -> spawn -> converge_baseline -> snapshot_baseline -> apply ->
    converge_change -> snapshot_change -> diff -> invariants -> rollback -> converge_rollback ->
    snapshot_rollback -> teardown (always) -> verdict

Input errors (ChangeError, GuardRejection, TopologyError) raise before anything spawns.
After that nothing raises: every failure becomes a `blocked` verdict with reasons, and
the twin is torn down in `finally`. The result is the document of docs/result-format.md.
Plain Python, no Django: the CLI, the Celery task and the stress test all call this.
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import platform
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from aegis_base.core.files import sha256_digest
from perimeter.egress import egress_record
from preflight.core.change import ChangeError, change_from_parts
from preflight.core.dataplane import dataplane_diff, witness_judge, witness_plan
from preflight.core.diff import diff_classify, diff_is_empty, diff_items, snapshot_diff
from preflight.core.guards import precheck
from preflight.core.intent import intent_infer, intent_is_empty
from preflight.core.invariants import INVARIANTS_FILE, invariants_evaluate, invariants_load
from preflight.core.ledger import ledger_summary, line_ledger
from preflight.core.resilience import (
    DEFAULT_MAX_SCENARIOS,
    failures_load,
    lost_message,
    redundancy_declared,
    resilience_compare,
    scenario_interfaces,
    scenarios_select,
    survivors,
)
from preflight.core.risk import risk_assess
from preflight.core.settle import settle_window
from preflight.core.static import static_check
from preflight.core.verdict import reason, verdict_decide
from twin import get_backend
from twin.base import Backend, Progress, Topology, no_progress
from twin.frrdelta import config_delta, config_items, contexts_of
from twin.pool import Lease, TwinPool, snapshot_digest
from twin.topology import load_lab

RESULT_FORMAT = "aegis.preflight.result/v1"
AEGIS_VERSION = "0.1.0"
# How often the baseline may be settled again when sessions are down or invariants fail.
BASELINE_SETTLE_ATTEMPTS = 3
# Failure scenarios run on the baseline before `apply` (resilience_baseline) and on the change
# after `dataplane` (resilience_change).
STEPS = ("precheck", "static", "spawn", "converge_baseline", "snapshot_baseline", "resilience_baseline", "apply",
         "converge_change", "snapshot_change", "diff", "dataplane", "resilience_change", "invariants", "rollback",
         "converge_rollback", "snapshot_rollback", "teardown", "verdict")
# Real packets sent to witness the FIB diff: one per changed statement, at most this many.
WITNESS_MAX = 16


class _StepFailed(Exception):
    """A step raised; the run stops its twin steps and ends blocked."""


def run_id_new() -> str:
    """The one maker of run ids (CLI, web, API, LLM): a UTC time and 6 random hex digits, 20261125-193000-ab12cd."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


sha256_text = sha256_digest  # the one `sha256:<hex>` helper (aegis_base.core.files)


def digest_json(obj: Any) -> str:
    return sha256_text(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _file_digest(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _file_digest_cached(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=1024)
def _file_digest_cached(path: str, mtime_ns: int, size: int) -> str:
    # Keyed on mtime and size, so an edited file is hashed again.
    return sha256_text(Path(path).read_bytes())


@lru_cache(maxsize=4096)
def _text_digest(text: str) -> str:
    return sha256_text(text)


def lab_facts(topology: Topology, lab_dir: str | Path) -> dict[str, Any]:
    """Name, path and digests of the lab: topology file, every node config, invariants."""
    source = Path(topology.source)
    topo_digest = _file_digest(source) or digest_json(topology.name)
    node_configs = {n: _text_digest(topology.nodes[n].frr_conf or "") for n in sorted(topology.nodes)}
    inv_digest = _file_digest(Path(lab_dir) / INVARIANTS_FILE)
    return {
        "name": topology.name,
        "path": str(lab_dir),
        "topology_digest": topo_digest,
        "node_configs": node_configs,
        "invariants_digest": inv_digest,
        "digest": digest_json({"topology": topo_digest, "node_configs": node_configs, "invariants": inv_digest}),
    }


def differences_from_production(topology: Topology, facts: dict[str, Any]) -> list[str]:
    """How this twin differs from the production network it stands for."""
    out: list[str] = []
    if facts.get("tier") == "simulated":
        out.append("simulated: no FRR daemon ran; routing is a seeded model of BGP (no OSPF, BFD, IPv6, timers); "
                   "this evidence is never promotable")
    else:
        out.append("no forwarding hardware: the data plane is the Linux kernel of the twin host (no ASIC, "
                   "no TCAM limits, no hardware ECMP hashing)")
        out.append("links are veth pairs: no loss, latency, optics or MTU faults unless the lab sets them")
    out.append("protocol timers as configured in the lab (e.g. `frr defaults datacenter`); production timers "
               "may differ and converge more slowly")
    host = facts.get("frr_version")
    images = sorted({n.image for n in topology.nodes.values() if n.image})
    for image in images:
        tag = image.rsplit(":", 1)[-1] if ":" in image else "latest"
        if host is None or tag.lstrip("v") != str(host):
            out.append(f"FRR version: the lab names image {image}; the twin ran FRR {host or 'none (simulated)'}")
    out.append("no management plane: management interfaces, AAA, SNMP, syslog and NTP are not modelled")
    out.append("external peers outside the lab (transit, customers) are absent; only the lab's routers exist")
    # The backend's own list (it knows its limits best), then ours, without repeats.
    merged: list[str] = []
    for line in list(facts.get("differences_from_production") or []) + out:
        if line not in merged:
            merged.append(line)
    return merged


def _backend_resolve(backend: str | Backend) -> Backend:
    if not isinstance(backend, str):
        return backend
    return get_backend(backend)


class _Run:
    """Mutable state of one run; the steps fill it, `document()` turns it into the result."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.steps: list[dict[str, Any]] = []
        self.reasons: list[dict[str, str]] = []
        self.current = ""

    def emit(self, step: str, status: str, message: str = "", data: dict[str, Any] | None = None) -> None:
        self.progress(step, status, message, data or {})

    def step(self, name: str, fn: Any, message: str = "") -> Any:
        self.current = name
        t0 = time.monotonic()
        try:
            self.emit(name, "started", message)
            value = fn()
            seconds = round(time.monotonic() - t0, 3)
            self.timings[name] = seconds
            self.steps.append({"name": name, "status": "ok", "seconds": seconds})
            self.emit(name, "ok", f"{seconds:.2f} s", {"seconds": seconds})
            return value
        except Exception as exc:  # noqa: BLE001 - every failure becomes a blocked verdict
            seconds = round(time.monotonic() - t0, 3)
            self.timings[name] = seconds
            self.steps.append({"name": name, "status": "failed", "seconds": seconds})
            detail = f"{type(exc).__name__}: {exc}"
            self.reasons.append(reason("STEP_FAILED", f"step {name} failed: {detail}"))
            try:
                self.emit(name, "failed", detail, {"seconds": seconds})
            except Exception:  # noqa: BLE001 - a broken progress sink must not hide the failure
                pass
            raise _StepFailed(name) from exc

    def skip(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            if not any(s["name"] == name for s in self.steps):
                self.steps.append({"name": name, "status": "skipped", "seconds": 0.0, "why": why})


def run_preflight(
    lab_dir: str | Path,
    change: dict[str, Any],
    *,
    backend: str | Backend = "netns",
    run_id: str | None = None,
    progress: Progress = no_progress,
    converge_timeout: float = 120.0,
    llm: dict[str, Any] | None = None,
    stable_for: float = 1.0,
    topology: Topology | None = None,
    invariants: list[dict[str, Any]] | None = None,
    syntax_check: bool = True,
    default_criticality: str = "medium",
    failures: str | int | None = None,
    failures_max: int = DEFAULT_MAX_SCENARIOS,
    twin_pool: TwinPool | None = None,
) -> dict[str, Any]:
    """Verify `change` on a twin of the lab and decide; returns the result document.

    `twin_pool`: a pool of warm baseline twins (twin/pool.py) to take the twin from and give it
    back to after a proven rollback; None spawns and tears down a twin for this run alone.

    `stable_for`: seconds the routing tables must stay still to count as settled (with the
    lab's `frr defaults datacenter` timers updates propagate in milliseconds; see
    docs/pipeline.md). `topology` and `invariants` may be passed pre-loaded (the stress test does, to run
    thousands of times); `syntax_check=False` skips `vtysh --dryrun` (only the stress test).
    `default_criticality`: the risk of a router without an `aegis.criticality` label (the site's
    AEGIS_DEFAULT_CRITICALITY), recorded in the result.
    `failures`: which failure scenarios run before and after the change (core/resilience.py):
    None/"auto" (the lab's `failures:` and the links of the change's devices, at most
    `failures_max`), "all", "none" or a number.
    """
    started_at = datetime.now(UTC)
    run_id = run_id or run_id_new()
    lab_dir = Path(lab_dir)
    # --- input: anything wrong here raises, and nothing has spawned ---------------------
    if topology is None:
        topology = load_lab(lab_dir)
    if lab_dir.is_file():  # a path to the .clab.yml itself: aegis.yml sits beside it
        lab_dir = lab_dir.parent
    if invariants is None:
        invariants = invariants_load(lab_dir, topology)
    if not isinstance(change, dict):
        raise ChangeError("the change must be a mapping (title, description, devices, expect, source)")
    expect_in = change.get("expect")
    if isinstance(expect_in, dict) and "declared" in expect_in:
        expect_in = None if not expect_in["declared"] else {k: v for k, v in expect_in.items() if k != "declared"}
    given = change
    change = change_from_parts(title=change.get("title"), description=change.get("description"),
                               devices=change.get("devices"), expect=expect_in,
                               source=change.get("source", "api"), topology=topology)
    if isinstance(given.get("desired"), dict):  # desired state as input: recorded, sealed; devices is the delta
        change["desired"] = given["desired"]
    if failures not in (None, "auto", "all", "none") and not (isinstance(failures, int) or str(failures).isdigit()):
        raise ChangeError(f"failures must be all, none, auto or a number, not {failures!r}")
    scenarios = scenarios_select(topology, sorted(change["devices"]), failures_load(lab_dir, topology),
                                 failures if failures != "auto" else None, failures_max)
    if default_criticality not in ("low", "medium", "high"):
        raise ChangeError(f"default criticality must be low, medium or high, not {default_criticality!r}")
    run = _Run(progress)
    intent = intent_infer(change, topology)
    state: dict[str, Any] = {"intent": intent, "scenarios": scenarios, "findings": [], "twin": None, "facts": {},
                             "conv": {}, "rejected": [], "diff": None, "classification": None, "invariants": [], "rollback": None,
                             "snapshots": {}}
    run.current = "precheck"
    _emit_guarded(run, "precheck", "started", "checking the change for unsafe input")
    t0 = time.monotonic()
    precheck(change, topology)  # GuardRejection propagates: an input error, nothing spawned
    run.timings["precheck"] = round(time.monotonic() - t0, 3)
    run.steps.append({"name": "precheck", "status": "ok", "seconds": run.timings["precheck"]})
    _emit_guarded(run, "precheck", "ok", "no unsafe input", {"seconds": run.timings["precheck"]})
    if isinstance(backend, str):
        state["facts"] = {"backend": backend, "tier": "simulated" if backend == "simulator" else "real"}
    else:
        state["facts"] = {"backend": getattr(backend, "name", "?"), "tier": getattr(backend, "tier", "?")}
    try:
        if not run.reasons:
            _twin_phases(run, state, lab_dir, change, topology, invariants, backend, run_id,
                         (converge_timeout, stable_for), syntax_check, twin_pool=twin_pool)
    except _StepFailed:
        pass
    except Exception as exc:  # noqa: BLE001 - defensive: the pipeline never raises after input
        run.reasons.append(reason("STEP_FAILED", f"internal error in {run.current}: {type(exc).__name__}: {exc}"))
    run.skip(STEPS[:-1], "an earlier step failed or found a blocking problem")
    risk = None
    try:
        risk = run.step("verdict", lambda: risk_assess(change, topology, state["classification"], state["diff"],
                                                       default_criticality=default_criticality,
                                                       ledger=state.get("ledger"),
                                                       resilience=state.get("resilience")))
    except _StepFailed:
        pass
    except Exception as exc:  # noqa: BLE001
        run.reasons.append(reason("STEP_FAILED", f"risk assessment failed: {type(exc).__name__}: {exc}"))
    verdict, reasons = verdict_decide(run.reasons, risk["tier"] if risk else None)
    return _document(run, state, verdict, reasons, risk, change, topology, lab_dir, run_id, llm, started_at)


def _emit_guarded(run: _Run, step: str, status: str, message: str, data: dict[str, Any] | None = None) -> None:
    """Emit outside `run.step`: a failing progress sink blocks the run instead of raising."""
    try:
        run.emit(step, status, message, data)
    except Exception as exc:  # noqa: BLE001
        run.reasons.append(reason("STEP_FAILED", f"step {step} failed: {type(exc).__name__}: {exc}"))


def _twin_phases(run: _Run, state: dict[str, Any], lab_dir: Path, change: dict[str, Any], topology: Topology,
                 invariants: list[dict[str, Any]], backend: str | Backend, run_id: str,
                 bounds: tuple[float, float], syntax_check: bool, twin_pool: TwinPool | None = None) -> None:
    findings = run.step("static", lambda: static_check(change, topology, syntax_check=syntax_check),
                        "FRR's parser and semantic checks")
    state["findings"] = findings
    errors = [f for f in findings if f["severity"] == "error"]
    for f in errors:
        where = f"{f['device']} line {f['line_no']}" if f["line_no"] else f["device"]
        run.reasons.append(reason("STATIC_ERROR", f"{where}: {f['message']}"))
    if errors:
        return  # nothing to learn from a twin that cannot load the change
    run.current = "spawn"
    try:
        be = _backend_resolve(backend)
    except Exception as exc:  # noqa: BLE001 - e.g. netns without root or FRR: a blocked run, said plainly
        run.reasons.append(reason("SPAWN_FAILED", f"the twin backend cannot run here: {exc}"))
        run.steps.append({"name": "spawn", "status": "failed", "seconds": 0.0})
        return
    state["facts"] = {"backend": getattr(be, "name", "?"), "tier": getattr(be, "tier", "?")}

    def twin_progress(step: str, status: str, message: str, data: dict[str, Any]) -> None:
        run.emit(run.current, "info", f"{step}: {message}" if message else step, data)

    # Warm twins only where a twin is real and expensive to bring up (the simulator's is free):
    # this process's pool for netns twins; a twin agent's own pool for http twins (the agent keeps
    # them across callers when it was started with a warm budget, and says when it has none).
    name = getattr(be, "name", "")
    pool: Any = twin_pool if name == "netns" else (be.warm_pool() if name == "http" and hasattr(be, "warm_pool")
                                                   else None)
    # The twin is kept the moment spawn returns it: if anything fails after that (even the
    # progress sink reporting "spawn ok"), `finally` still tears it down (or hands it back to
    # the pool, which keeps it only after a proven rollback).
    spawned: list[Any] = []
    twin = None
    lease = None
    try:
        try:
            if pool is not None:
                lease = run.step("spawn", lambda: _warm_acquire(pool, topology, spawned, run_id, twin_progress, be),
                                 f"{len(topology.nodes)} nodes on the {state['facts']['backend']} backend "
                                 "(a warm twin when the pool holds one)")
            else:
                run.step("spawn", lambda: spawned.append(be.spawn(topology, run_id, twin_progress)),
                         f"{len(topology.nodes)} nodes on the {state['facts']['backend']} backend")
        except _StepFailed:
            twin = spawned[0] if spawned else None
            state["twin"] = twin
            run.reasons[-1] = reason("SPAWN_FAILED", run.reasons[-1]["message"])
            return
        twin = spawned[0]
        state["twin"] = twin
        state["lease"] = lease
        state["facts"] = dict(getattr(twin, "facts", {}) or state["facts"])
        if lease is not None:
            run.emit("spawn", "info", f"warm twin {twin.run_id}: its state and running configs equal the "
                     f"baseline {lease.entry.baseline_digest[:19]}… (use {lease.entry.uses})",
                     {"warm": True, "baseline_digest": lease.entry.baseline_digest})
        # The simulator models no protocol timers: nothing to wait for there.
        if state["facts"].get("tier") != "simulated":
            state["settle_window"] = settle_window(topology, change, bounds[0])
        _run_on_twin(run, state, twin, change, invariants, bounds)
    finally:
        # `spawned`, not `twin`: an interrupt (Ctrl-C, SIGTERM) can land after spawn returned and
        # before `twin` was assigned, e.g. while the progress sink reports "spawn ok".
        if twin is None and spawned:
            twin = spawned[0]
        if twin is not None:
            _teardown(run, twin, state, pool, topology)


def _warm_acquire(pool: TwinPool, topology: Topology, spawned: list[Any], run_id: str, progress: Progress,
                  be: Any) -> Lease | None:
    """A verified warm twin from the pool, else a fresh one (put in `spawned` either way)."""
    lease = pool.acquire(topology)
    spawned.append(lease.twin if lease is not None else be.spawn(topology, run_id, progress))
    return lease


def _teardown(run: _Run, twin: Any, state: dict[str, Any] | None = None, pool: TwinPool | None = None,
              topology: Topology | None = None) -> None:
    """Tear the twin down (or give it back to the pool) exactly once, whatever the sink or the twin does."""
    run.current = "teardown"
    t0 = time.monotonic()
    state = state if state is not None else {}
    lease = state.get("lease")
    rb = state.get("rollback") or {}
    snaps = state.get("snapshots") or {}
    # A daemon that died mid-run (crash, OOM kill) makes every snapshot after it a picture of a
    # broken router, not of the change: blocked, saying which daemon, and never kept warm.
    exited = _daemons_exited(run, twin)
    if exited:
        run.reasons.append(reason("DAEMON_EXITED", f"{', '.join(exited)} exited during the run: the twin's "
                                  "results after that are not evidence of the change"))
    # Back to the pool only after a proven rollback; the pool checks again for itself.
    proven = bool(rb.get("verified")) and "rollback" in snaps and not exited
    _emit_guarded(run, "teardown", "started", "returning the twin to the warm pool" if pool is not None and proven
                  else "stopping daemons, deleting namespaces")
    status, detail = "ok", ""
    kept = False
    try:
        if pool is not None and lease is not None:
            kept = pool.release(lease, snaps.get("rollback"), proven)
        elif pool is not None and proven and topology is not None:
            kept = pool.adopt(topology, twin, snaps["baseline"], snaps["rollback"])
        if not kept:
            twin.teardown()
    except Exception as exc:  # noqa: BLE001 - reported as a blocking reason, never raised
        status, detail = "failed", f"{type(exc).__name__}: {exc}"
        run.reasons.append(reason("TEARDOWN_FAILED", f"teardown failed: {detail} (the reaper removes leftovers)"))
    state["pool_kept"] = kept
    seconds = round(time.monotonic() - t0, 3)
    run.timings["teardown"] = seconds
    run.steps.append({"name": "teardown", "status": status, "seconds": seconds})
    _emit_guarded(run, "teardown", status, detail or (f"kept warm in the pool ({seconds:.2f} s)" if kept
                                                      else f"{seconds:.2f} s"), {"seconds": seconds, "kept_warm": kept})


def _daemons_exited(run: _Run, twin: Any) -> list[str]:
    """The twin's daemons that are no longer running (backends that can tell; others: none)."""
    check = getattr(twin, "daemons_exited", None)
    if check is None:
        return []
    try:
        return list(check())
    except Exception as exc:  # noqa: BLE001 - cannot tell is not "all running"
        return [f"(the daemon check failed: {type(exc).__name__}: {exc})"]


def _run_on_twin(run: _Run, state: dict[str, Any], twin: Any, change: dict[str, Any],
                 invariants: list[dict[str, Any]], bounds: tuple[float, float]) -> None:
    converge_timeout, stable_for = bounds
    devices = sorted(change["devices"])
    conv = state["conv"]
    lease = state.get("lease")
    s0 = (_warm_baseline(run, state, twin, lease, invariants) if lease is not None
          else _cold_baseline(run, state, twin, invariants, bounds))
    if s0 is None:
        return
    before = {d: twin.running_config(d) for d in devices}
    state["snapshots"]["baseline"] = s0
    broken = [c for c in state["baseline_invariants"] if not c["ok"]]
    hint = (f"; still down after settling {state['baseline_settle_attempts'] + 1} times: "
            f"{', '.join(state['baseline_down'][:4])}" if state["baseline_down"] else "")
    for c in broken:
        run.reasons.append(reason("BASELINE_INVARIANT_VIOLATED",
                                  f"the lab breaks its own invariant before any change: {c['kind']} "
                                  f"{_spec_text(c['spec'])}: {c['detail']}{hint} (fix the lab or its aegis.yml, "
                                  f"or rerun if the twin host is overloaded)"))
    if broken:
        return
    state["failed_before"] = run.step("resilience_baseline", lambda: _scenarios_run(
        run, state, twin, bounds, list(state.get("baseline_down") or [])),
                                      f"{len(state['scenarios'])} failure scenario(s) on the baseline")
    results = run.step("apply", lambda: [twin.apply(d, change["devices"][d]) for d in devices],
                       f"entering the change on {', '.join(devices)}")
    t_applied = time.monotonic()
    state["apply_results"] = {ar.node: ar for ar in results}
    for ar in results:
        for rl in ar.rejected:
            state["rejected"].append({"node": rl.node, "line": rl.line, "line_no": rl.line_no,
                                      "message": rl.message})
            run.reasons.append(reason("APPLY_REJECTED", f"{rl.node} refused `{rl.line}`: {rl.message}"))
    # The running configs the change left. Settling moves routes, never a config, so the
    # rollback's delta (frr-reload --test from these back to the baseline's: a process of its
    # own) is worked out now, while the change settles, instead of after S1.
    after = {d: twin.running_config(d) for d in devices}
    plan_ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-rollback-plan")
    planned = plan_ex.submit(_rollback_plan, twin, devices, before, after)
    # The per-line ledger too (FRR's delta of the two configs, computed in-process): the same
    # inputs, known now.
    ledgered = (plan_ex.submit(_ledger_lines, state, change, devices, before, after)
                if state["facts"].get("tier") != "simulated" else None)
    try:
        window = state.get("settle_window")
        # S1, the data plane (FIB read and witness pings) and the invariants' pings are read inside
        # the change's settle window where the twin can (`_settle_reading`): a witness of a dropped
        # destination and a `must_not_reach` each wait out a 1 s ping timeout, time the network must
        # be watched anyway. Believed only if nothing changed from their start to the sweep that
        # decided, and only if the routers' tables as that sweep read them are the same.
        inside: dict[str, Any] = {}

        def s1_reads() -> dict[str, Any]:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-s1-dataplane") as ex:
                fut = ex.submit(_dataplane_measure, state, twin, change)
                s1 = twin.snapshot()
                inv = invariants_evaluate(invariants, s1, twin.reach)
                return {"s1": s1, "invariants": inv, "measured": fut.result()}

        def settle_reading(not_before: float | None = None) -> Any:
            cr, value, held = _settle_reading(twin, bounds, s1_reads, not_before=not_before,
                                              recheck=lambda v, cr: _nodes_unchanged(twin, v["s1"], cr), read_after=False)
            inside.clear()
            if held:
                inside.update(value)
            return cr

        def settle_change() -> Any:
            # A loss that waits for a protocol timer (the far end of a session whose path went away
            # keeps it Established until its hold timer expires) is invisible to the twin's quiet
            # window: do not believe the network before the lab's relevant timer has run out.
            state["settle"] = {**(window.as_dict() if window else {"seconds": 0.0}), "waited_s": 0.0}
            if window and window.seconds > 0 and getattr(twin, "converge_not_before", False):
                # The twin keeps watching until the deadline (docs/dev/CONTRACTS.md): a change that
                # arrives while it waits restarts its window, which a plain sleep would not see.
                t_call = time.monotonic()
                deadline = t_applied + window.seconds
                cr = settle_reading(not_before=deadline)
                state["settle"]["waited_s"] = round(max(0.0, time.monotonic() - (t_call + cr.seconds + stable_for)), 3)
                state["settle"]["not_before_s"] = round(window.seconds, 3)
                return cr
            cr = settle_reading()
            remaining = (window.seconds if window else 0.0) - (time.monotonic() - t_applied)
            if cr.converged and remaining > 0:
                run.emit("converge_change", "info", f"waiting {remaining:.1f} s more: {window.timer} of {window.node} "
                         f"{window.subject} is {window.timer_seconds:g} s ({window.source})")
                time.sleep(remaining)  # a timer has to run out; there is no state to poll for a loss to come
                state["settle"]["waited_s"] = round(remaining, 3)
                cr = settle_reading()
            return cr

        why = (f"network settling after the change (at least {window.seconds:g} s: {window.timer} of {window.node})"
               if window and window.seconds else "network settling after the change")
        cr = run.step("converge_change", settle_change, why)
        conv["change"] = cr
        if not cr.converged:
            run.reasons.append(reason("CHANGE_NOT_CONVERGED",
                                      f"the network did not settle within {converge_timeout:.0f} s after the change: "
                                      f"{'; '.join(cr.still_moving[:5]) or 'still moving'}"))
            if _daemons_exited(run, twin):
                return  # a router without its daemon: nothing after this is evidence (teardown says which)
        # Everything from here to the failure scenarios only looks at the changed network S1 (a
        # ping moves no route), so the slow looks run side by side instead of one after the other:
        # the data plane's FIB read and witness pings start now, the invariants' live pings as soon
        # as S1 is taken. A witness of a dropped destination and a `must_not_reach` each wait out a
        # 1 s ping timeout; overlapped, those seconds are paid once. Both finish (the `with` waits
        # for them, also when a step fails) before any scenario takes a link down.
        state["s1_read_inside_window"] = bool(inside)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="aegis-s1") as ex:
            if inside:  # read inside the settle window, and still what the routers hold
                measured, pending = _done(inside["measured"]), _done(inside["invariants"])
                s1 = run.step("snapshot_change", lambda: inside["s1"], "taken inside the settle window")
            else:
                measured = ex.submit(_dataplane_measure, state, twin, change)
                s1 = run.step("snapshot_change", twin.snapshot)
                pending = ex.submit(invariants_evaluate, invariants, s1, twin.reach)
            state["snapshots"]["after"] = s1

            def do_diff() -> None:
                _config_ledger(run, state, change, devices, before, after, ledgered)
                d = snapshot_diff(s0, s1)
                state["diff"] = d
                # A hand-written expect wins; without one, the intent inferred from the lines decides
                # which effects are intended (shown to the operator in the result).
                expect = change["expect"] if change["expect"].get("declared") else state["intent"]
                state["classification"] = diff_classify(d, expect)

            run.step("diff", do_diff)
            codes = {"route_removed": "PREFIX_LOST", "route_blackholed": "PREFIX_BLACKHOLED", "session_lost": "SESSION_LOST",
                     "adjacency_lost": "ADJACENCY_LOST", "reachability_lost": "REACHABILITY_LOST"}
            for item in state["classification"]["undeclared"]:
                if item["loss"]:
                    against = "declared in expect" if change["expect"].get("declared") else "in the inferred intent"
                    run.reasons.append(reason(codes[item["kind"]], f"{item['message']} (not {against})"))
            gains = [i for i in state["classification"]["undeclared"] if not i["loss"]]
            if gains:
                shown = "; ".join(i["message"] for i in gains[:3]) + (f"; and {len(gains) - 3} more" if len(gains) > 3 else "")
                against = "expect" if change["expect"].get("declared") else "the inferred intent"
                run.reasons.append(reason("UNDECLARED_EFFECT", f"{len(gains)} effect(s) beyond {against}: {shown}"))
            for m in state["classification"]["expected_missing"]:
                run.reasons.append(reason("EXPECTED_EFFECT_MISSING", m))
            run.step("dataplane", lambda: _dataplane_judge(run, state, measured.result()),
                     "forwarding outcomes from every router's FIB, before vs after; witnessed by real packets")
            wait([pending, planned])
    finally:
        # Never leave frr-reload running in a router while the run goes on to tear it down.
        plan_ex.shutdown(wait=True)
    failed_after = run.step("resilience_change", lambda: _scenarios_run(
        run, state, twin, bounds, list(getattr(conv["change"], "down", []) or [])),
                            f"the same {len(state['scenarios'])} failure scenario(s) on the changed network")
    _resilience(run, state, change, s0, s1, failed_after)
    inv = run.step("invariants", pending.result,
                   f"{len(invariants)} invariant(s) on the changed network (pinged while the data plane was read)")
    state["invariants"] = inv
    for r in inv:
        if not r["ok"]:
            run.reasons.append(reason("INVARIANT_VIOLATED", f"{r['kind']} {_spec_text(r['spec'])}: {r['detail']}"))
    _rollback(run, state, twin, devices, before, after, bounds, planned.result())


def _done(value: Any) -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_result(value)
    return fut


def _rollback_plan(twin: Any, devices: list[str], before: dict[str, str], after: dict[str, str]) -> dict[str, Any]:
    """frr-reload's tested delta per changed device, for a twin that can reuse it (netns); {}
    otherwise. A failure here only means the rollback tests the delta itself, as before."""
    if not hasattr(twin, "reload_plan"):
        return {}
    plans = {}
    for d in devices:
        if after[d] == before[d]:
            continue
        try:
            rr = twin.reload_plan(d, before[d])
        except Exception:  # noqa: BLE001 - the rollback runs frr-reload's test itself
            continue
        if rr is not None:
            plans[d] = {"config": after[d], "tested": rr}
    return plans


def _covered(ranges: list[str], declared: list[str]) -> bool:
    """Every range lies inside one of the declared prefixes (same family)."""
    nets = [ipaddress.ip_network(p) for p in declared]
    for r in ranges:
        net = ipaddress.ip_network(r)
        if not any(net.version == d.version and net.subnet_of(d) for d in nets):  # type: ignore[arg-type]
            return False
    return True


def _dataplane_measure(state: dict[str, Any], twin: Any, change: dict[str, Any]) -> dict[str, Any]:
    """FIB diff S0 -> S1 over every (ingress, destination class), then real packets as witnesses.

    Only reads the twin (and the run's state): it runs beside the snapshot and diff of S1; the
    reasons are added by `_dataplane_judge` in the dataplane step."""
    t0 = time.monotonic()
    if state.get("fib_before") is None or not hasattr(twin, "fib"):
        return {"skipped": "this twin backend cannot read forwarding tables"}
    result = dataplane_diff(state["fib_before"], twin.fib()).as_dict()
    # Without an expect, the intent inferred from the lines says what they withdraw (issue 10).
    expect = change["expect"] if change["expect"].get("declared") else state["intent"]
    # Traffic the change means to drop: expect.traffic_dropped, or a prefix it declares removed.
    declared = list(expect.get("traffic_dropped") or []) + sorted(
        {p for prefixes in (expect.get("prefixes_removed") or {}).values() for p in prefixes if p != "*"})
    for s in result["changed"]:
        s["declared"] = s["kind"] == "blackhole" and bool(declared) and _covered(s["ranges"], declared)
    witnessed = []
    for w in witness_plan(result["changed"], WITNESS_MAX):
        probe = twin.probe(w["from"], w["address"])
        verdict, why = witness_judge(w["expected"], probe)
        witnessed.append({**w, "probe": probe, "result": verdict, "why": why})
    result["witnessed"] = witnessed
    result["seconds"] = round(time.monotonic() - t0, 3)
    return result


def _dataplane_judge(run: _Run, state: dict[str, Any], result: dict[str, Any]) -> None:
    """The data plane's reasons: loops always block; undeclared drops and disagreeing witnesses too."""
    state["dataplane"] = result
    if "skipped" in result:
        return
    witnessed = result["witnessed"]
    # A forwarding loop is never an intended state: it always blocks.
    for s in result["loops"]:
        run.reasons.append(reason("DATAPLANE_LOOP", f"forwarding loop: {s['text']}"))
    for s in result["blackholes"]:
        if not s["declared"]:
            run.reasons.append(reason("DATAPLANE_BLACKHOLE", f"traffic newly dropped: {s['text']} "
                                      "(not declared in expect.traffic_dropped or prefixes_removed)"))
    for w in witnessed:
        if w["result"] == "disagree":
            run.reasons.append(reason("DATAPLANE_WITNESS_DISAGREES",
                                      f"ping {w['from']} -> {w['address']}: {w['why']} ({w['statement']})"))


def _ledger_lines(state: dict[str, Any], change: dict[str, Any], devices: list[str], before: dict[str, str],
                  after: dict[str, str]) -> dict[str, Any]:
    """Each device's per-line ledger (no reasons yet): a function of the change, the apply's
    output and the two running configs only, so it can be worked out while the change settles."""
    devices_out: dict[str, Any] = {}
    for d in devices:
        ar = state.get("apply_results", {}).get(d)
        rejected = [r for r in state["rejected"] if r["node"] == d]
        devices_out[d] = line_ledger(d, change["devices"][d], config_items(change["devices"][d]),
                                     config_delta(before[d], after[d]), contexts_of(after[d]), rejected,
                                     getattr(ar, "output", "") if ar is not None else "")
    return devices_out


def _config_ledger(run: _Run, state: dict[str, Any], change: dict[str, Any], devices: list[str],
                   before: dict[str, str], after: dict[str, str], lines: Future[Any] | None = None) -> None:
    """Per-line ledger from FRR's own delta between each device's running config before and after
    (`lines`: `_ledger_lines` worked out earlier on the same configs), and its reasons."""
    if state["facts"].get("tier") == "simulated":
        state["ledger"] = {"available": False, "why": "the simulator runs no FRR: no running config to compare"}
        return
    devices_out = lines.result() if lines is not None else _ledger_lines(state, change, devices, before, after)
    state["ledger"] = {"available": True, "method": "frr-reload.py delta (vtysh -m) of running config "
                                                  "before vs after the apply", "devices": devices_out,
                       "summary": ledger_summary(devices_out)}
    for d, led in devices_out.items():
        for e in led["lines"]:
            where = f"{d} line {e['line_no']} `{e['line']}`"
            said = f"; FRR said: {e['frr_said']}" if e["frr_said"] else ""
            if e["status"] == "rejected" and e.get("detected"):
                state["rejected"].append({"node": d, "line": e["line"], "line_no": e["line_no"],
                                          "message": e["frr_said"], "detected": e["detected"]})
                run.reasons.append(reason("APPLY_REJECTED", f"{d} refused `{e['line']}`: {e['frr_said']} "
                                                            "(printed by the daemon; vtysh exited 0)"))
            elif e["status"] == "not_applied":
                run.reasons.append(reason("LINE_NOT_APPLIED", f"{where} left the running config unchanged"
                                          + (said or "; FRR printed nothing and exited 0")))
            elif e["status"] == "reinterpreted":
                run.reasons.append(reason("LINE_REINTERPRETED", f"{where} was entered as `{e['became']}`{said}"))
        if led["unrequested"]:
            shown = "; ".join(f"{u['change']} `{' / '.join(u['context'] + [u['line']])}`" for u in led["unrequested"][:3])
            run.reasons.append(reason("DELTA_UNREQUESTED", f"{d}: the running config also changed where no change "
                                                           f"line asked: {shown}"))
    if all(led["delta_empty"] for led in devices_out.values()):
        run.reasons.append(reason("NO_OP_CHANGE", "the running config of every device is exactly as before: "
                                                  "the change does nothing"))


def _warm_baseline(run: _Run, state: dict[str, Any], twin: Any, lease: Lease, invariants: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """A warm twin's baseline: settled when it entered the pool, verified equal just now by the pool."""
    state["conv"]["baseline"] = None
    run.steps.append({"name": "converge_baseline", "status": "ok", "seconds": 0.0})
    run.timings["converge_baseline"] = 0.0
    _emit_guarded(run, "converge_baseline", "ok", "warm twin: settled when it entered the pool; state equal to "
                  "that baseline now", {"seconds": 0.0, "warm": True})

    def baseline() -> dict[str, Any]:
        snap = lease.snapshot
        state["baseline_invariants"] = invariants_evaluate(invariants, snap, twin.reach)
        state["baseline_down"] = []
        state["baseline_settle_attempts"] = 0
        state["baseline_second_looks"] = 0
        state["fib_before"] = _fib_of(twin)
        return snap

    return run.step("snapshot_baseline", baseline)


def _settle_reading(twin: Any, bounds: tuple[float, float], reads: Any, not_before: float | None = None,
                    recheck: Any = None, read_after: bool = True) -> tuple[Any, Any, bool]:
    """Settle, with `reads` of the settled network taken inside the settle window where the twin
    can (netns: `converge(alongside=...)`, believed only if nothing changed from their start to
    the sweep that decided) and after it otherwise. (ConvergeResult, the reads, inside?)

    `recheck(value, cr)`, when given, is asked after the window: False (e.g. the control-plane
    tables as the sweep that closed the window read them differ from the ones read inside) drops
    the inside reads and reads again, so what the run keeps is never older than what a read after
    the window would have been.
    `read_after=False`: when nothing held, return None and let the caller read."""
    timeout, stable_for = bounds
    extra: dict[str, Any] = {"not_before": not_before} if not_before is not None else {}
    if "alongside" in inspect.signature(twin.converge).parameters:
        cr = twin.converge(timeout, stable_for, alongside=reads, **extra)
    else:
        cr = twin.converge(timeout, stable_for, **extra)
    held = getattr(cr, "alongside", None)
    if held is not None and held.exception() is None:
        value = held.result()
        if recheck is None or recheck(value, cr):
            return cr, value, True
    # Nothing held (not settled, a twin that cannot read alongside, an error inside, or a
    # table that moved since): read now, after the window, as before.
    return cr, (reads() if read_after else None), False


def _fib_of(twin: Any) -> dict[str, Any] | None:
    """The twin's kernel FIBs for the data-plane diff; None for a backend that has none."""
    return twin.fib() if hasattr(twin, "fib") else None


def _nodes_unchanged(twin: Any, snap: dict[str, Any], cr: Any = None) -> bool:
    """The routers' tables (everything a snapshot reads from the daemons, not the pings) read
    again at the end of the window equal the ones in `snap`: no change the kernel's notifications
    could not see (a BGP best path or a RIB entry that moved no FIB) happened since `snap` was
    read. The netns twin's deciding sweep reads them in its own vtysh call (`cr.tables`, taken
    after the reads ended, at the moment the window was declared over); other twins are asked now."""
    tables = getattr(cr, "tables", None)
    if tables is None:
        tables = twin.snapshot(reachability=False).get("nodes")
    return tables == snap.get("nodes")


def _cold_baseline(run: _Run, state: dict[str, Any], twin: Any, invariants: list[dict[str, Any]],
                   bounds: tuple[float, float]) -> dict[str, Any] | None:
    """Settle a fresh twin and take its baseline S0 (None: it did not settle; the reason is recorded).

    S0, the baseline invariants' pings and the kernel FIBs are read inside the settle window
    (`_settle_reading`): the pings wait out their timeouts while the network must be watched
    anyway, and the reads are believed only if nothing changed while they ran."""
    converge_timeout, stable_for = bounds
    conv = state["conv"]

    def reads() -> dict[str, Any]:
        snap = twin.snapshot()
        return {"snap": snap, "checks": invariants_evaluate(invariants, snap, twin.reach),
                "fib": _fib_of(twin)}

    first: dict[str, Any] = {}

    def converge_baseline() -> Any:
        cr, first["reads"], first["inside"] = _settle_reading(twin, bounds, reads)
        return cr

    cr = run.step("converge_baseline", converge_baseline, "baseline settling (S0 and the invariants' pings are "
                  "read inside the window)")
    conv["baseline"] = cr
    if not cr.converged:
        run.reasons.append(reason("BASELINE_NOT_CONVERGED",
                                  f"the lab's baseline did not settle within {converge_timeout:.0f} s: "
                                  f"{'; '.join(cr.still_moving[:5]) or 'still moving'}"))
        return None

    def baseline() -> dict[str, Any]:
        # The lab's invariants must already hold before the change, and its sessions should be
        # up. When they are not, the baseline may have been declared settled too early: a BGP
        # session whose first connect failed waits for the connect-retry timer (10 s with
        # datacenter defaults), as long as the twin's quiet window. Settle again, a bounded
        # number of times, before calling the lab broken.
        t_start = time.monotonic()
        down = list(getattr(cr, "down", []) or [])
        got = first["reads"]
        snap, checks, fib = got["snap"], got["checks"], got["fib"]
        attempts = 0
        while (down or any(not c["ok"] for c in checks)) and attempts < BASELINE_SETTLE_ATTEMPTS and \
                time.monotonic() - t_start < converge_timeout:
            attempts += 1
            what = f"{len(down)} session(s) still down" if down else "an invariant fails"
            run.emit("snapshot_baseline", "info", f"baseline: {what}; settling again ({attempts})")
            again, got, _ = _settle_reading(twin, bounds, reads)
            down = list(getattr(again, "down", []) or [])
            snap, checks, fib = got["snap"], got["checks"], got["fib"]
        # A second look: a baseline is only a baseline if it holds still. On a loaded host OSPF
        # can add an equal-cost path after the twin's stability window (seen on campus: dist1's
        # default route gained its second next hop later), and the rollback would then be
        # compared against a state the network never settled in. Settle once more (a whole
        # window more of watching) and take a new snapshot until two agree, a bounded number of
        # times. The second snapshot is read inside that window too, and the routers' tables are
        # read once more by the sweep that closed it (`_nodes_unchanged`), so S0 == S0' still
        # compares S0 with the network as it stands after a second full window.
        looks = 0
        while time.monotonic() - t_start < converge_timeout:
            _, again, _ = _settle_reading(
                twin, bounds, lambda: {"snap": twin.snapshot(), "fib": _fib_of(twin)},
                recheck=lambda v, cr: _nodes_unchanged(twin, v["snap"], cr))
            if again["snap"] == snap or looks >= BASELINE_SETTLE_ATTEMPTS:
                fib = again["fib"]
                break
            looks += 1
            run.emit("snapshot_baseline", "info", f"baseline still moving; looking again ({looks})")
            snap, fib = again["snap"], again["fib"]
            checks = invariants_evaluate(invariants, snap, twin.reach)
        state["baseline_invariants"] = checks
        state["baseline_down"] = down
        state["baseline_settle_attempts"] = attempts
        state["baseline_second_looks"] = looks
        state["baseline_read_inside_window"] = first["inside"]
        # The kernel FIBs of the settled baseline (read with its last look), for the data-plane
        # diff after the change.
        state["fib_before"] = fib
        return snap

    return run.step("snapshot_baseline", baseline, "the second look: one more settle window, S0 read again")


def _settle_failed(twin: Any, timeout: float, stable_for: float, expect_down: list[str] | None = None) -> Any:
    """Settle with a failure in place: sessions over the failed link stay down for good, so the
    quiet window that lets down sessions count as settled is shortened (netns twin), and the
    sessions the failure takes down by construction (`expect_down`) need no quiet window at all."""
    params = inspect.signature(twin.converge).parameters
    if "quiet_for" in params:
        extra: dict[str, Any] = {"expect_down": expect_down} if expect_down and "expect_down" in params else {}
        return twin.converge(timeout, stable_for, quiet_for=max(2 * stable_for, 6.0), **extra)
    return twin.converge(timeout, stable_for)


def _sessions_over(snapshot: dict[str, Any], ends: list[tuple[str, str]]) -> list[str]:
    """The BGP sessions (as "NODE: bgp PEER ") whose peer address lies on a failed interface's
    subnet, or that run over the interface itself (unnumbered): they go down with the link and
    cannot come back while it is down."""
    nodes = snapshot.get("nodes") or {}
    nets = []
    for node, iface in ends:
        for addr in ((nodes.get(node) or {}).get("interfaces") or {}).get(iface, {}).get("addresses") or []:
            try:
                nets.append(ipaddress.ip_interface(addr).network)
            except ValueError:
                continue
    failed = set(ends)
    out = []
    for node, data in sorted(nodes.items()):
        for peer in (data.get("bgp") or {}):
            try:
                on_link = any(ipaddress.ip_address(peer.split("%")[0]) in n for n in nets)
            except ValueError:
                on_link = (node, peer) in failed  # an unnumbered session is named by its interface
            if on_link:
                out.append(f"{node}: bgp {peer} ")
    return out


def _scenarios_run(run: _Run, state: dict[str, Any], twin: Any, bounds: tuple[float, float], down_before: list[str]
                   ) -> dict[str, dict[str, Any]]:
    """Each scenario: fail, settle, snapshot, restore, settle. {name: {items, converged, seconds}}."""
    timeout, stable_for = bounds
    topology = twin.topology
    out: dict[str, dict[str, Any]] = {}
    for sc in state["scenarios"]:
        t0 = time.monotonic()
        ends = scenario_interfaces(topology, sc)
        run.emit(run.current, "info", f"{sc['name']}: failing {', '.join(f'{n}:{i}' for n, i in ends)}")
        gone = _sessions_over(state["snapshots"].get("after") or state["snapshots"].get("baseline") or {}, ends)
        try:
            for node, iface in ends:
                twin.set_link(node, iface, False)
            cr = _settle_failed(twin, timeout, stable_for, gone)
            items = survivors(twin.snapshot())
        finally:
            for node, iface in ends:
                twin.set_link(node, iface, True)
        # Restored = the sessions down before the failure, and no others (a BGP session over the
        # restored link comes back on its connect-retry timer): a short quiet window first, the
        # full one only when the down set is not back yet.
        restored = _settle_failed(twin, timeout, stable_for)
        if restored.converged and sorted(restored.down) != sorted(down_before):
            restored = twin.converge(timeout, stable_for)
        if not restored.converged:
            raise RuntimeError(f"the network did not settle after restoring {sc['name']}: "
                               f"{'; '.join(restored.still_moving[:3])}")
        out[sc["name"]] = {"items": items, "converged": cr.converged, "seconds": round(time.monotonic() - t0, 3)}
    return out


def _resilience(run: _Run, state: dict[str, Any], change: dict[str, Any], s0: dict[str, Any], s1: dict[str, Any],
                failed_after: dict[str, dict[str, Any]]) -> None:
    """Compare every scenario before vs after; REDUNDANCY_LOST unless expect.redundancy_removed names it."""
    before = state.get("failed_before") or {}
    base, changed = survivors(s0), survivors(s1)
    declared = list(change["expect"].get("redundancy_removed") or [])
    rows = []
    for sc in state["scenarios"]:
        b, a = before.get(sc["name"]), failed_after.get(sc["name"])
        if b is None or a is None:
            continue
        row = resilience_compare(sc, b["items"], a["items"], base, changed)
        row["seconds"] = {"before": b["seconds"], "after": a["seconds"]}
        row["settled"] = {"before": b["converged"], "after": a["converged"]}
        row["declared"] = bool(row["lost"]) and redundancy_declared(sc["name"], declared)
        rows.append(row)
        if row["lost"] and not row["declared"]:
            run.reasons.append(reason("REDUNDANCY_LOST", lost_message(row) + " (not declared in "
                                      "expect.redundancy_removed)"))
    total = sum(v["seconds"] for v in before.values()) + sum(v["seconds"] for v in failed_after.values())
    state["resilience"] = {"scenarios": rows, "seconds": round(total, 3),
                           "redundancy_removed_declared": [r["name"] for r in rows if r["declared"]]}


def _rollback(run: _Run, state: dict[str, Any], twin: Any, devices: list[str], before: dict[str, str],
              after: dict[str, str], bounds: tuple[float, float], plans: dict[str, Any] | None = None
              ) -> None:
    """Inverse of what actually changed (frr-reload deltas to the baseline), proven by S2 == S0.

    Three outcomes, told apart (result.rollback.status): `restored`; `restored_after_retry` (the
    state came back only after more settling, e.g. a BGP session waiting for its connect-retry
    timer: not blocking, reason ROLLBACK_SLOW with the seconds); `lines_fail` (frr-reload could
    not apply the inverse or the running config is not the baseline again: the back-out plan is
    broken, ROLLBACK_LINES_FAILED blocks). A state that never came back is ROLLBACK_NOT_VERIFIED.
    """
    rb: dict[str, Any] = {"lines": {}, "deltas": {}, "verified": False, "mismatch": [], "second_look": False,
                          "status": None, "restored_after_s": None, "looks": 0, "lines_failed": {}}
    state["rollback"] = rb
    t_rb = time.monotonic()

    def do_rollback() -> None:
        for d in devices:
            if after[d] == before[d]:
                continue
            plan = (plans or {}).get(d)
            # The delta tested earlier is used only if the running config is still the one it
            # was tested on (failure scenarios change link state, never configs; this checks).
            if plan is not None and twin.running_config(d) == plan["config"]:
                rr = twin.reload_config(d, before[d], tested=plan["tested"])
            else:
                rr = twin.reload_config(d, before[d])
            rb["deltas"][d] = {"delete": list(rr.lines_to_delete), "add": list(rr.lines_to_add)}
            rb["lines"][d] = rollback_lines(rr.lines_to_delete, rr.lines_to_add)
            if not rr.applied:
                rb["lines_failed"][d] = {"frr_reload": (rr.output or "").strip()[-800:]}

    run.step("rollback", do_rollback, "restoring the baseline config (frr-reload deltas)")
    converge_timeout = bounds[0]
    # S2 is read inside the rollback's settle window where the twin can, held by the same rule as
    # S0 and S1 (nothing changed from its start to the sweep that decided, and the tables that
    # sweep read equal S2's); otherwise after it, as before.
    inside: dict[str, Any] = {}

    def converge_rollback() -> Any:
        cr, snap, held = _settle_reading(twin, bounds, twin.snapshot, read_after=False,
                                         recheck=lambda v, c: _nodes_unchanged(twin, v, c))
        state["s2_read_inside_window"] = held
        if held:
            inside["s2"] = snap
        return cr

    cr = run.step("converge_rollback", converge_rollback, "network settling after rollback")
    state["conv"]["rollback"] = cr
    if not cr.converged:
        run.reasons.append(reason("ROLLBACK_NOT_CONVERGED",
                                  f"the network did not settle within {converge_timeout:.0f} s after rollback"))

    def after_rollback() -> dict[str, Any]:
        snap = inside["s2"] if "s2" in inside else twin.snapshot()
        # A state can come back late (OSPF SPF back-off and the ABR task; a BGP session waiting
        # for its connect-retry timer): settle again, bounded, and record how long it took.
        while not diff_is_empty(snapshot_diff(state["snapshots"]["baseline"], snap)) and \
                rb["looks"] < BASELINE_SETTLE_ATTEMPTS and time.monotonic() - t_rb < converge_timeout:
            rb["looks"] += 1
            rb["second_look"] = True
            run.emit("snapshot_rollback", "info", f"state differs from the baseline; settling again ({rb['looks']})")
            twin.converge(converge_timeout)
            snap = twin.snapshot()
        return snap

    s2 = run.step("snapshot_rollback", after_rollback)
    seconds = round(time.monotonic() - t_rb, 1)
    state["snapshots"]["rollback"] = s2
    mismatch = [i["message"] for i in diff_items(snapshot_diff(state["snapshots"]["baseline"], s2))]
    for d in devices:
        now = _config_norm(twin.running_config(d))
        was = _config_norm(before[d])
        if now != was:
            extra = [ln.strip() for ln in now if ln not in was]
            gone = [ln.strip() for ln in was if ln not in now]
            rb["lines_failed"].setdefault(d, {}).update({"still_there": extra[:20], "not_restored": gone[:20]})
    rb["mismatch"] = mismatch + [f"{d}: running config after rollback differs from the baseline"
                                 for d in sorted(rb["lines_failed"])]
    rb["verified"] = not rb["mismatch"]
    if rb["lines_failed"]:
        rb["status"] = "lines_fail"
        for d, f in sorted(rb["lines_failed"].items()):
            what = "; ".join(filter(None, [
                f"still there: {', '.join(f['still_there'][:4])}" if f.get("still_there") else "",
                f"not restored: {', '.join(f['not_restored'][:4])}" if f.get("not_restored") else "",
                f"frr-reload: {f['frr_reload'][-200:]}" if f.get("frr_reload") else ""]))
            run.reasons.append(reason("ROLLBACK_LINES_FAILED", f"{d}: the rollback lines do not bring the running "
                                                               f"config back to the baseline ({what}): the "
                                                               "back-out plan is broken"))
    if mismatch:
        rb["status"] = rb["status"] or "not_restored"
        shown = "; ".join(mismatch[:3]) + (f"; and {len(mismatch) - 3} more" if len(mismatch) > 3 else "")
        run.reasons.append(reason("ROLLBACK_NOT_VERIFIED", f"rollback did not restore the baseline: {shown}"))
    if rb["verified"]:
        rb["restored_after_s"] = seconds
        rb["status"] = "restored_after_retry" if rb["looks"] else "restored"
        if rb["looks"]:
            run.reasons.append(reason("ROLLBACK_SLOW", f"rollback restores the baseline only after {seconds:g} s "
                                                       f"({rb['looks']} more settling round(s): a protocol retry "
                                                       "timer); plan the back-out window for it"))


def rollback_lines(to_delete: list[str], to_add: list[str]) -> list[str]:
    """frr-reload's delta as lines an operator can keep and paste into configuration mode.

    frr-reload prints its "Lines To Delete" already negated and in context (`router bgp 1` /
    ` no network …`), followed by "Lines To Add"; entered in that order they reach the target.
    """
    return list(to_delete) + list(to_add)


def _config_norm(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.split("\n") if ln.strip() and not ln.strip().startswith("!")]


def _spec_text(spec: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in spec.items())


def _convergence(conv: dict[str, Any], key: str) -> float | None:
    cr = conv.get(key)
    return round(cr.seconds, 3) if cr is not None else None


def _document(run: _Run, state: dict[str, Any], verdict: str, reasons: list[dict[str, str]],
              risk: dict[str, Any] | None, change: dict[str, Any], topology: Topology, lab_dir: Path,
              run_id: str, llm: dict[str, Any] | None, started_at: datetime) -> dict[str, Any]:
    facts = state["facts"]
    twin = state["twin"]
    load_errors = [{"node": e.node, "line": e.line, "message": e.message, "line_no": e.line_no}
                   for e in (getattr(twin, "load_errors", []) or [])] if twin is not None else []
    diff = state["diff"]
    classification = state["classification"]
    diff_doc = None
    if diff is not None:
        diff_doc = dict(diff)
        diff_doc.update({"intended": classification["intended"], "undeclared": classification["undeclared"],
                         "expected_missing": classification["expected_missing"]})
    change_doc = dict(change)
    change_doc["digest"] = digest_json({k: change[k] for k in ("title", "description", "devices", "expect")})
    return {
        "format": RESULT_FORMAT,
        "run_id": run_id,
        "verdict": verdict,
        "reasons": reasons,
        "risk": risk,
        "change": change_doc,
        "lab": lab_facts(topology, lab_dir),
        "static_findings": state["findings"],
        "twin": {
            "backend": facts.get("backend"),
            "tier": facts.get("tier"),
            "frr_version": facts.get("frr_version"),
            "nodes": len(topology.nodes),
            "links": len(topology.links),
            "spawned": twin is not None,
            "baseline_convergence_s": _convergence(state["conv"], "baseline"),
            "change_convergence_s": _convergence(state["conv"], "change"),
            "rollback_convergence_s": _convergence(state["conv"], "rollback"),
            "baseline_down": state.get("baseline_down", []),
            "baseline_settle_attempts": state.get("baseline_settle_attempts", 0),
            "baseline_second_looks": state.get("baseline_second_looks", 0),
            # Whether S0 (with the baseline invariants' pings) and S1 (with the data plane and the
            # invariants' pings) were read inside their settle window (docs/twin.md, Converge):
            # believed only because nothing changed while they were read; false: read after it.
            "reads_inside_window": {"baseline": bool(state.get("baseline_read_inside_window")),
                                    "change": bool(state.get("s1_read_inside_window")),
                                    "rollback": bool(state.get("s2_read_inside_window"))},
            # Warm: the twin came from the pool (twin/pool.py), already at the baseline whose
            # digest follows; cold: spawned for this run. Either way the digest is S0's.
            "warm": state.get("lease") is not None,
            "baseline_digest": (snapshot_digest(state["snapshots"]["baseline"])
                                if "baseline" in state["snapshots"] else None),
            "pool": _pool_record(state),
            "load_errors": load_errors,
            "warnings": list(topology.warnings),
            "differences_from_production": differences_from_production(topology, facts) if facts else [],
            "facts": facts,
        },
        "apply": {"rejected": state["rejected"], "ledger": state.get("ledger")},
        "intent": {"inferred": state["intent"], "used": "declared" if change["expect"].get("declared") else "inferred",
                   "empty": intent_is_empty(state["intent"])},
        "settle": state.get("settle"),
        "diff": diff_doc,
        "invariants": state["invariants"],
        "dataplane": state.get("dataplane"),
        "resilience": state.get("resilience"),
        "baseline_invariants": state.get("baseline_invariants", []),
        "rollback": state["rollback"] or {"lines": {}, "deltas": {}, "verified": False, "mismatch": [],
                                          "skipped": True},
        "steps": run.steps,
        "timings": run.timings,
        "snapshots": state["snapshots"],
        "llm": llm,
        "egress": _egress_record(),
        "versions": {"aegis": AEGIS_VERSION, "frr": facts.get("frr_version"), "python": platform.python_version()},
        "started_at": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _pool_record(state: dict[str, Any]) -> dict[str, Any] | None:
    lease = state.get("lease")
    if lease is None and "pool_kept" not in state:
        return None
    return {"twin_id": getattr(state.get("twin"), "run_id", None), "kept": bool(state.get("pool_kept")),
            "uses": lease.entry.uses if lease is not None else 1,
            "pool_baseline_digest": lease.entry.baseline_digest if lease is not None else None}


def _egress_record() -> dict[str, Any]:
    try:
        return egress_record()
    except Exception as exc:  # noqa: BLE001 - the record is informative, never a reason to fail a run
        return {"policy": None, "contacted": [], "note": f"egress record unavailable: {exc}"}
