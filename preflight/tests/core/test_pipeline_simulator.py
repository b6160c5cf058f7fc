"""The whole pipeline on the seeded simulator: example verdicts, faults, input errors, determinism."""

from __future__ import annotations

import pytest

from preflight.core.change import ChangeError, change_load
from preflight.core.guards import GuardRejection
from preflight.core.pipeline import STEPS, run_preflight
from preflight.core.stress import fingerprint
from twin.simulator import SimulatorBackend

from .examples import LABS, examples

TRIANGLE = LABS / "triangle"
SHIP = (TRIANGLE / "changes" / "ship_ready.yml").read_text()


def run(change, backend, **kw):
    return run_preflight(TRIANGLE, change, backend=backend, **kw)


@pytest.fixture
def ship(triangle):
    return change_load(SHIP, triangle)


TRIANGLE_EXAMPLES = [e for e in examples() if e.lab.name == "triangle"]


@pytest.mark.parametrize("ex", TRIANGLE_EXAMPLES, ids=[e.id for e in TRIANGLE_EXAMPLES])
def test_triangle_examples_on_the_simulator(triangle, ex):
    backend = SimulatorBackend(seed=1)
    text = ex.path.read_text()
    if ex.exit_code == 2:
        with pytest.raises((ChangeError, GuardRejection)):
            run(change_load(text, triangle), backend)
        assert backend.spawn_attempts == 0
        return
    result = run(change_load(text, triangle), backend, failures=ex.failures)
    codes = [r["code"] for r in result["reasons"]]
    assert result["verdict"] == ex.verdict, result["reasons"]
    assert set(ex.reasons) <= set(codes)
    assert (backend.spawn_attempts == 1) is ex.spawned
    assert all(t.teardown_calls == 1 for t in backend.twins)
    assert result["twin"]["tier"] == "simulated"
    if ex.spawned and ex.verdict != "blocked":
        assert result["rollback"]["verified"] is True


def test_ship_ready_result_document_has_the_contract_keys(ship):
    result = run(ship, SimulatorBackend())
    for key in ("format", "run_id", "verdict", "reasons", "risk", "change", "lab", "static_findings", "twin",
                "apply", "diff", "invariants", "rollback", "timings", "snapshots", "llm", "egress", "versions",
                "started_at", "finished_at"):
        assert key in result
    assert result["lab"]["digest"].startswith("sha256:") and set(result["lab"]["node_configs"]) == {"r1", "r2", "r3"}
    assert result["change"]["digest"].startswith("sha256:")
    assert result["rollback"]["lines"] == {"r3": ["no ip route 198.51.100.0/24 Null0", "no network 198.51.100.0/24"]}
    assert result["twin"]["differences_from_production"][0].startswith("simulated")
    # The simulator's converge cannot read alongside its window: S0 and S1 were read after it.
    assert result["twin"]["reads_inside_window"] == {"baseline": False, "change": False, "rollback": False}
    assert [s["name"] for s in result["steps"]] == list(STEPS)
    assert set(result["timings"]) == set(STEPS)


def test_progress_events_use_the_contract_step_names_in_order(ship):
    events = []
    run(ship, SimulatorBackend(), progress=lambda step, status, msg, data: events.append((step, status)))
    started = [s for s, st in events if st == "started"]
    assert started == list(STEPS)
    assert all(s in STEPS for s, _ in events)


def test_same_proposal_and_lab_give_the_same_result(ship):
    a = run(ship, SimulatorBackend(seed=5))
    b = run(ship, SimulatorBackend(seed=5))
    assert fingerprint(a) == fingerprint(b)
    assert a["lab"]["digest"] == b["lab"]["digest"] and a["change"]["digest"] == b["change"]["digest"]


@pytest.mark.parametrize("faults, code", [
    ({"spawn_failure": True}, "SPAWN_FAILED"),
    ({"converge_timeout": "baseline"}, "BASELINE_NOT_CONVERGED"),
    ({"converge_timeout": "change"}, "CHANGE_NOT_CONVERGED"),
    ({"converge_timeout": "rollback"}, "ROLLBACK_NOT_CONVERGED"),
    ({"daemon_crash": "r3"}, "SESSION_LOST"),
    ({"rejected_apply": True}, "APPLY_REJECTED"),
    *[({"exception": m}, "TEARDOWN_FAILED" if m == "teardown" else "STEP_FAILED")
      for m in ("converge", "snapshot", "apply", "reach", "running_config", "reload_config", "teardown")],
])
def test_every_injected_fault_blocks_and_the_twin_is_torn_down_once(ship, faults, code):
    backend = SimulatorBackend(faults=faults)
    result = run(ship, backend)
    assert result["verdict"] == "blocked"
    assert code in [r["code"] for r in result["reasons"]], result["reasons"]
    assert [t.teardown_calls for t in backend.twins] == ([] if "spawn_failure" in faults else [1])


@pytest.mark.parametrize("step", STEPS)
def test_a_progress_sink_failing_at_any_step_blocks_but_never_raises_or_leaks(ship, step):
    backend = SimulatorBackend()

    def progress(s, status, message, data):
        if s == step and status == "started":
            raise RuntimeError("websocket gone")

    result = run(ship, backend, progress=progress)
    assert result["verdict"] == "blocked"
    expected = "SPAWN_FAILED" if step == "spawn" else "STEP_FAILED"
    assert expected in [r["code"] for r in result["reasons"]]
    assert all(t.teardown_calls == 1 for t in backend.twins)


def test_unsafe_input_raises_before_spawn(triangle):
    backend = SimulatorBackend()
    change = {"title": "t", "devices": {"r1": "ip route 10.9.0.0/16 Null0\nstart-shell"}, "source": "llm"}
    with pytest.raises(GuardRejection, match="line 2"):
        run(change, backend)
    assert backend.spawn_attempts == 0


def test_unknown_device_raises_before_spawn():
    backend = SimulatorBackend()
    with pytest.raises(ChangeError, match="not in lab 'triangle'"):
        run({"title": "t", "devices": {"r9": "ip route 10.9.0.0/16 Null0"}, "source": "api"}, backend)
    assert backend.spawn_attempts == 0


def test_static_error_stops_before_spawn(triangle):
    backend = SimulatorBackend()
    result = run(change_load((TRIANGLE / "changes" / "undefined_reference.yml").read_text(), triangle), backend)
    assert backend.spawn_attempts == 0
    assert result["twin"]["spawned"] is False
    assert [s["status"] for s in result["steps"] if s["name"] == "spawn"] == ["skipped"]
    assert result["static_findings"][0]["code"] == "UNDEFINED_REFERENCE"


def test_broken_baseline_invariant_blocks_with_a_clear_reason(triangle, tmp_path):
    import shutil

    lab = tmp_path / "triangle"
    shutil.copytree(TRIANGLE, lab)
    (lab / "aegis.yml").write_text("invariants:\n  - prefix_present: {node: r1, prefix: 203.0.113.0/24}\n")
    result = run_preflight(lab, change_load(SHIP, triangle), backend=SimulatorBackend())
    assert result["verdict"] == "blocked"
    assert [r["code"] for r in result["reasons"]] == ["BASELINE_INVARIANT_VIOLATED"]
    assert "fix the lab or its aegis.yml" in result["reasons"][0]["message"]


def test_a_backend_that_cannot_run_here_blocks_with_a_plain_reason(ship):
    result = run(ship, "no-such-backend")
    assert result["verdict"] == "blocked"
    assert result["reasons"][0]["code"] == "SPAWN_FAILED"
    assert "unknown twin backend 'no-such-backend'" in result["reasons"][0]["message"]
    assert result["twin"]["spawned"] is False
