"""The documented CI job (docs/ci.md, ci/preflight-changed-labs.sh) on a throwaway lab repository.

Given a lab repository with a commit that edits a router config, the job preflights the edit
(`preflight --git BASE..HEAD` through the one run path, simulator backend to keep CI cheap),
writes the JUnit report and the Markdown summary, and exits with the verdict's code; a commit
that rewires the lab is refused as input (exit 2) with the reason in both reports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from django.db import connection

from preflight.models import ChangeRequest, PreflightRun

from .examples import LABS

REPO = LABS.parent
JOB = REPO / "ci" / "preflight-changed-labs.sh"
pytestmark = pytest.mark.django_db(transaction=True)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=ci", "-c", "user.email=ci@example.invalid",
                           *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def lab_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "network"
    shutil.copytree(LABS / "triangle", repo / "labs" / "triangle", ignore=shutil.ignore_patterns("changes"))
    (repo / "README.md").write_text("our lab\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "the lab as it runs")
    return repo


def _job(repo: Path, tmp_path: Path, out: str) -> subprocess.CompletedProcess[str]:
    if connection.vendor != "postgresql":
        pytest.skip("the job's preflight runs in another process: it needs the PostgreSQL test database")
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "DATABASE_URL"))}
    env.update({
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "AEGIS_HOME": str(tmp_path / "home"), "AEGIS_RUNS_DIR": str(tmp_path / "runs"),
        "AEGIS_SITE_KEY_FILE": str(tmp_path / "home" / "keys" / "site_ed25519.pem"),
        "AEGIS_MANAGE": f"{sys.executable} {REPO / 'manage.py'}", "AEGIS_BACKEND": "simulator",
        "AEGIS_CI_OUT": str(tmp_path / out),
    })
    return subprocess.run(["bash", str(JOB), "HEAD~1", "HEAD"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)


def test_job_preflights_the_edited_config_and_writes_reports(lab_repo: Path, tmp_path: Path) -> None:
    conf = lab_repo / "labs" / "triangle" / "r3" / "frr.conf"
    conf.write_text(conf.read_text().replace(" network 192.0.2.0/24\n", " network 192.0.2.0/24\n  network 198.51.100.0/24\n")
                    .replace("ip route 192.0.2.0/24 Null0\n", "ip route 192.0.2.0/24 Null0\nip route 198.51.100.0/24 Null0\n"))
    _git(lab_repo, "commit", "-qam", "r3 announces 198.51.100.0/24")
    proc = _job(lab_repo, tmp_path, "reports")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lines to add:" in proc.stdout and "ip route 198.51.100.0/24 Null0" in proc.stdout
    reports = tmp_path / "reports"
    suite = ET.parse(reports / "triangle.junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) >= 10
    md = (reports / "triangle.md").read_text()
    assert "`ship_ready`" in md and "git HEAD~1..HEAD" in md and "sealed `sha256:" in md
    assert (reports / "summary.md").read_text() == md
    run = PreflightRun.objects.get()  # one run, through the one path, sealed
    assert run.bundle_digest and run.result["change"]["desired"]["origin"].startswith("git HEAD~1..HEAD")
    assert ChangeRequest.objects.get().devices["r3"].endswith("ip route 198.51.100.0/24 Null0\n")

    # A second change on top: r2 stops announcing its loopback -> the lab's invariant fails -> 20.
    conf = lab_repo / "labs" / "triangle" / "r2" / "frr.conf"
    conf.write_text(conf.read_text().replace("  network 10.255.0.2/32\n", ""))
    _git(lab_repo, "commit", "-qam", "clean up r2")
    proc = _job(lab_repo, tmp_path, "reports2")
    assert proc.returncode == 20, proc.stdout + proc.stderr
    failures = [tc.find("failure").get("message") for tc in ET.parse(tmp_path / "reports2" / "triangle.junit.xml")
                .getroot().iter("testcase") if tc.find("failure") is not None]
    assert any("10.255.0.2" in f for f in failures)
    assert "`INVARIANT_VIOLATED`" in (tmp_path / "reports2" / "triangle.md").read_text()


def test_job_refuses_a_wiring_change_with_the_reason_in_the_reports(lab_repo: Path, tmp_path: Path) -> None:
    clab = lab_repo / "labs" / "triangle" / "triangle.clab.yml"
    lines = clab.read_text().splitlines(keepends=True)
    clab.write_text("".join(ln for ln in lines if '"r3:eth2", "r1:eth2"' not in ln))
    _git(lab_repo, "commit", "-qam", "drop the r1-r3 link")
    proc = _job(lab_repo, tmp_path, "reports")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    case = ET.parse(tmp_path / "reports" / "triangle.junit.xml").getroot().find("testsuite/testcase")
    assert case.get("classname") == "aegis.input" and "not a config change" in case.find("failure").get("message")
    assert "not a config change" in (tmp_path / "reports" / "triangle.md").read_text()
    assert not PreflightRun.objects.exists()


def test_job_without_a_changed_lab_passes(lab_repo: Path, tmp_path: Path) -> None:
    (lab_repo / "README.md").write_text("docs only\n")
    _git(lab_repo, "commit", "-qam", "docs")
    proc = _job(lab_repo, tmp_path, "reports")
    assert proc.returncode == 0 and "no lab changed" in proc.stdout


def test_both_documented_jobs_call_this_script() -> None:
    doc = (REPO / "docs" / "ci.md").read_text()
    gitlab, github = doc.split("### GitLab CI")[1].split("### GitHub Actions")
    for job in (gitlab, github):
        assert "/opt/aegis/ci/preflight-changed-labs.sh" in job
