"""`manage.py preflight` and `manage.py stress` as a user runs them (simulator backend)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from preflight.core.stress import stress_run

from .examples import LABS

TRIANGLE = LABS / "triangle"
CHANGES = TRIANGLE / "changes"

# The command seals every run into the ledger (database) unless --no-seal.
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_evidence_home(settings, tmp_path):
    """Site key and bundles of one test in its own folder, never the repository's var/."""
    settings.AEGIS_HOME = tmp_path / "home"
    settings.AEGIS_SITE_KEY_FILE = tmp_path / "home" / "keys" / "site_ed25519.pem"


def preflight(*args, **kw):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("preflight", *args, stdout=out, stderr=err, **kw)
    return exit_.value.code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name, code, verdict", [
    ("ship_ready", 0, "ship_ready"),
    ("needs_approval", 10, "needs_approval"),
    ("session_lost", 20, "blocked"),
])
def test_exit_code_per_verdict_and_result_json_written(tmp_path, name, code, verdict):
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / f"{name}.yml"), "--backend", "simulator",
                           "--out", str(tmp_path / "run"))
    assert rc == code
    assert f"verdict: {verdict}" in out
    assert ".. spawn" in out and "ok teardown" in out  # each step shown as it runs
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["verdict"] == verdict
    # every verdict is sealed beside the result: the bundle names the same run and verdict
    bundle = json.loads((tmp_path / "run" / "bundle.json").read_text())
    assert (tmp_path / "run" / "report.pdf").read_bytes().startswith(b"%PDF")
    assert bundle["digest"].startswith("sha256:") and f"sealed: {bundle['digest']}" in out


def test_sealed_bundle_verifies_and_no_seal_writes_result_only(tmp_path):
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "simulator",
                           "--out", str(tmp_path / "sealed"))
    assert rc == 0
    verify_out = io.StringIO()
    try:
        call_command("verify_bundle", str(tmp_path / "sealed" / "bundle.json"), stdout=verify_out)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    assert code == 0 and "VERIFIED" in verify_out.getvalue(), verify_out.getvalue()
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "simulator",
                           "--out", str(tmp_path / "plain"), "--no-seal")
    assert rc == 0 and "sealed:" not in out
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["result.json"]


def test_intent_without_an_llm_is_an_input_error_and_spawns_nothing(tmp_path, settings):
    settings.AEGIS_LLM_URL = ""
    settings.AEGIS_LLM_GGUF = ""
    rc, _, err = preflight(str(TRIANGLE), "--intent", "announce 203.0.113.0/24 from r3", "--backend", "simulator",
                           "--out", str(tmp_path / "run"))
    assert rc == 2
    assert "No LLM is configured" in err and "nothing was spawned" in err
    assert not (tmp_path / "run" / "result.json").exists()


def test_unknown_framework_is_an_input_error(tmp_path):
    rc, _, err = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "simulator",
                           "--frameworks", "nist-800-53r5,sox", "--out", str(tmp_path / "run"))
    assert rc == 2 and "Unknown framework sox" in err


def test_json_prints_one_object(tmp_path):
    rc, out, err = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "simulator",
                             "--json", "--out", str(tmp_path))
    assert rc == 0
    doc = json.loads(out)
    assert doc["verdict"] == "ship_ready" and doc["result_path"] == str(tmp_path / "result.json")
    assert "spawn" in err  # progress goes to stderr so stdout stays one JSON object


def test_failures_none_on_the_command_line_runs_no_scenario(tmp_path):
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "simulator",
                           "--failures", "none", "--json", "--out", str(tmp_path))
    assert rc == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["resilience"]["scenarios"] == [] and "resilience_baseline" in result["timings"]


def test_default_out_is_a_new_folder_under_runs(tmp_path, settings):
    settings.AEGIS_RUNS_DIR = tmp_path / "runs"
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "simulator")
    assert rc == 0
    [folder] = list((tmp_path / "runs").iterdir())
    assert (folder / "result.json").is_file() and str(folder / "result.json") in out


@pytest.mark.parametrize("args, fragment", [
    (["labs/nope", "--change", str(CHANGES / "ship_ready.yml")], "lab folder labs/nope does not exist"),
    ([str(TRIANGLE), "--change", "/nonexistent.yml"], "change file /nonexistent.yml does not exist"),
    ([str(TRIANGLE), "--change", str(CHANGES / "guard_rejected.yml")], "device r3, line 2: `do` is not allowed"),
    ([str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--failures", "many"],
     "--failures: failures must be all, none, auto or a number"),
])
def test_input_errors_exit_2_with_what_to_fix(args, fragment):
    rc, out, err = preflight(*args, "--backend", "simulator")
    assert rc == 2
    assert fragment in err and "nothing was spawned" in err
    assert "Traceback" not in err + out


def test_bad_yaml_is_an_input_error(tmp_path):
    bad = tmp_path / "c.yml"
    bad.write_text("title: [x\ndevices: {}\n")
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(bad), "--backend", "simulator", "--json")
    assert rc == 2
    assert "is not valid YAML at line" in json.loads(out)["message"]


def test_netns_without_root_is_refused_before_spawning(monkeypatch):
    # Simulates an unprivileged web process: the netns backend needs root.
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    rc, _, err = preflight(str(TRIANGLE), "--change", str(CHANGES / "ship_ready.yml"), "--backend", "netns")
    assert rc == 2 and "needs root" in err and "--backend simulator" in err


def test_stress_small_count_holds_every_invariant():
    report = stress_run(TRIANGLE, runs=600, seed=11, recheck_every=5)
    data = report.as_dict()
    assert data["violations"] == 0, data["violation_examples"]
    assert data["spawns"] == data["teardowns"] > 0
    assert data["rechecked"] == 120
    # every kind of proposal and fault was exercised
    assert set(data["categories"]) >= {"valid", "hostile", "malformed", "session_drop", "prefix_drop", "syntax"}
    assert {"spawn_failure", "converge_timeout", "daemon_crash", "rejected_apply", "progress"} <= set(
        data["faults_fired"])
    assert data["input_errors"]["GuardRejection"] == data["categories"]["hostile"]
    assert {"blocked", "needs_approval", "ship_ready"} == set(data["verdicts"])


def test_stress_same_seed_same_digest():
    assert stress_run(TRIANGLE, runs=200, seed=3, recheck_every=0).digest == \
        stress_run(TRIANGLE, runs=200, seed=3, recheck_every=0).digest


def test_stress_command_prints_counts_and_exits_0():
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("stress", "--runs", "150", "--seed", "2", stdout=out)
    assert exit_.value.code == 0
    assert "runs: 150" in out.getvalue() and "violations: 0" in out.getvalue()


def test_stress_checker_flags_what_it_must():
    # The checker itself must be able to fail: feed it outcomes that break each rule.
    from preflight.core.stress import StressReport, _check
    from twin.simulator import SimulatorBackend

    def outcome(category="valid", **kw):
        backend = SimulatorBackend()
        return {"category": category, "faults": {}, "progress_step": None, "backend": backend, "fired": [], **kw}

    leaked = outcome()
    leaked["backend"].spawn_attempts = 1
    twin = type("T", (), {"teardown_calls": 0, "fired": []})()
    leaked["backend"].twins.append(twin)
    leaked["input_error"] = "ChangeError"
    report = StressReport()
    _check(0, leaked, report)
    assert any("torn down 0 times" in v for v in report.violations)
    assert any("input error but spawn was called" in v for v in report.violations)
    report = StressReport()
    _check(1, outcome("hostile", result={"verdict": "blocked"}), report)
    assert any("hostile input was accepted" in v for v in report.violations)
    report = StressReport()
    _check(2, outcome(unhandled="KeyError: x"), report)
    assert report.violations == ["run 2: unhandled exception: KeyError: x"]


def test_the_inferred_intent_is_shown_to_the_operator(tmp_path):
    rc, out, _ = preflight(str(TRIANGLE), "--change", str(CHANGES / "announce_no_expect.yml"), "--backend",
                           "simulator", "--out", str(tmp_path / "run"))
    assert rc == 0
    assert "intent (inferred from the lines; write an expect to correct it):" in out
    assert "r3: network 198.51.100.0/24 -> announces 198.51.100.0/24" in out


def test_stress_fingerprint_ignores_the_rollback_clock_but_not_its_outcome():
    # A repeat under load measured the simulator's rollback at 0.1 s instead of 0.0 s and was
    # reported as "same seed gave a different result"; a different rollback outcome still differs.
    from preflight.core.stress import fingerprint

    base = {"verdict": "ship_ready", "rollback": {"status": "restored", "restored_after_s": 0.0, "looks": 0}}
    slower = {**base, "rollback": {**base["rollback"], "restored_after_s": 0.1}}
    retried = {**base, "rollback": {**base["rollback"], "status": "restored_after_retry", "looks": 1}}
    assert fingerprint(base) == fingerprint(slower)
    assert fingerprint(base) != fingerprint(retried)
