"""The reaper removes exactly the twins whose owner died; lab_check and twin_reap commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from twin import runstate
from twin.reap import twin_reap
from twin.topology import load_lab

from .conftest import LABS, REPO, leftovers_of, requires_netns

pytestmark = [requires_netns, pytest.mark.twin]

CHILD = """
import sys, time
from twin.netns import NetnsBackend
from twin.topology import load_lab
twin = NetnsBackend().spawn(load_lab(sys.argv[1]))
pids = [p for p, _ in twin.state["holders"].values()] + [p for d in twin.state["daemons"].values() for p, _ in d.values()]
print(twin.run_id, *pids, flush=True)
time.sleep(600)
"""


def test_reaper_removes_a_crashed_run_and_leaves_live_ones_and_strangers_alone(spawn_twin):
    live = spawn_twin(load_lab(LABS / "triangle"))
    stranger = "aegis-ffffffff-x"  # has the prefix but no run record: not ours to delete
    subprocess.run(["ip", "netns", "add", stranger], check=True)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(LABS / "triangle")], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        run_id, *pids = child.stdout.readline().split()
        pids = [int(p) for p in pids]
        assert runstate.run_dir(run_id).exists() and pids
        child.send_signal(signal.SIGKILL)  # the owner crashes: no finally, no teardown
        child.wait(10)
        assert leftovers_of(run_id, pids)  # it really left things behind
        removed = twin_reap()
        # (another AEGIS process on this host may have reaped it first: every spawn reaps orphans)
        assert run_id in removed or not runstate.run_dir(run_id).exists()
        assert leftovers_of(run_id, pids) == []
        assert live.run_id not in removed and (runstate.NETNS_DIR / live.ns("r1")).exists()
        assert (runstate.NETNS_DIR / stranger).exists()
        assert twin_reap() == [] or run_id not in twin_reap()  # idempotent
    finally:
        if child.poll() is None:
            child.kill()
        subprocess.run(["ip", "netns", "del", stranger])
        twin_reap()


def manage(*args, timeout=180):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_lab_check_command_json_and_exit_codes(tmp_path):
    t0 = time.monotonic()
    ok = manage("lab_check", str(LABS / "triangle"), "--json", "--timeout", "60")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["converged"] is True and report["nodes"] == 3
    assert report["bgp_sessions"] == {"established": 6, "total": 6}
    assert report["rejected_lines"] == [] and isinstance(report["warnings"], list)
    assert 0 < report["convergence_s"] < time.monotonic() - t0
    assert leftovers_of(report["twin_id"], []) == []



def run_command(*args):
    """call_command in-process: (exit code, stdout, stderr)."""
    import io

    from django.core.management import call_command
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_lab_check_bad_input_exits_2_with_what_to_fix(tmp_path):
    code, _, err = run_command("lab_check", str(tmp_path / "nope"))
    assert code == 2 and "no such lab folder" in err and "Traceback" not in err
    (tmp_path / "x.clab.yml").write_text("name: x\ntopology:\n  nodes: {r1: {kind: ceos}}\n")
    code, out, _ = run_command("lab_check", str(tmp_path), "--json")
    assert code == 2
    assert "kind 'ceos' is not supported" in json.loads(out)["error"]
    code, _, err = run_command("lab_check", str(LABS / "triangle"), "--timeout", "0")
    assert code == 2 and "--timeout must be positive" in err


def test_lab_check_not_converged_exits_1(tmp_path):
    # a peer that exists nowhere, and a window longer than the timeout: it cannot settle in time
    lab = tmp_path / "t"
    lab.mkdir()
    import shutil
    shutil.copytree(LABS / "triangle", lab, dirs_exist_ok=True, ignore=shutil.ignore_patterns("changes", "aegis.yml"))
    conf = lab / "r1" / "frr.conf"
    conf.write_text(conf.read_text().replace(" neighbor 10.0.13.1 description r3\n",
                                             " neighbor 10.0.13.1 description r3\n neighbor 10.0.99.1 remote-as 65099\n"))
    r = manage("lab_check", str(lab), "--timeout", "8", "--stable-for", "2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DID NOT SETTLE" in r.stdout and "r1: bgp 10.0.99.1" in r.stdout


def test_twin_reap_command_runs():
    code, out, _ = run_command("twin_reap", "--json")
    assert code == 0
    data = json.loads(out)
    assert isinstance(data["removed"], list) and isinstance(data["still_running"], list)
    assert isinstance(data["stray_frr"], list)
