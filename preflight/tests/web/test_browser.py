"""A real Chromium against a live daphne: operator, approver and auditor do their jobs.

The server is the one-command first try (`manage.py serve` runs the same daphne): no broker,
so runs execute on the in-process worker, and progress streams over the websocket. Debian's
Chromium is used (Playwright's browser download does not work here). Screenshots are kept in
AEGIS_SCREENSHOT_DIR (default: the test's tmp folder) to be looked at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from evidence.models import Bundle
from preflight.models import PreflightRun
from preflight.tests.web.fixtures import REPO, _user

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server_url(transactional_db, tmp_path, lab, settings):
    """daphne serving the test database, stopped by PID afterwards (also when the test fails)."""
    from django.conf import global_settings

    # The server checks passwords with the site's hashers, so personas are made with them too.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    port = _free_port()
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "CELERY_"))}
    env.update(
        {
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "AEGIS_HOME": str(tmp_path / "home"),
            "AEGIS_RUNS_DIR": str(tmp_path / "runs"),
            "AEGIS_SITE_KEY_FILE": str(tmp_path / "home" / "keys" / "site_ed25519.pem"),
            "AEGIS_LABS_DIR": str(REPO / "labs"),
            "AEGIS_TWIN_CONVERGE_TIMEOUT_S": "60",
        }
    )
    log = (tmp_path / "daphne.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "aegis_site.asgi:application"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        f"daphne did not start:\n{(tmp_path / 'daphne.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)  # daphne waits for the in-process worker's run to stop
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture
def browser():
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = (
        "true"  # playwright's sync API runs a loop; ORM reads here are safe
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # ORM reads made while Playwright's loop ran may hold their own connection; close them
            # so the test database can be dropped.
            from django.db import connections

            connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("AEGIS_SCREENSHOT_DIR", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sign_in(browser, base: str, username: str, next_url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-pw-12345")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{next_url}")
    return page, errors


def test_bad_config_shows_an_inline_error_and_nothing_runs(live_server_url, browser, roles, shots):
    _user("olivia", "operator")
    page, js_errors = _sign_in(browser, live_server_url, "olivia", "/preflight/?lab=triangle")
    page.fill("#id_title", "Look at the routes")
    page.fill("#id_device_r3", "do show ip route\n")
    page.select_option("#id_backend", "simulator")
    page.click("#submit-change")
    error = page.locator(".field-error ul.errorlist")
    error.wait_for()
    page.screenshot(path=str(shots / "operator-inline-error.png"), full_page=True)
    assert "`do` is not allowed" in error.inner_text()
    assert page.input_value("#id_device_r3") == "do show ip route\n"  # what she typed is kept
    assert PreflightRun.objects.count() == 0 and js_errors == []


@pytest.mark.twin
@pytest.mark.slow
def test_operator_runs_a_change_on_the_real_twin_approver_approves_auditor_verifies(
    live_server_url, browser, roles, shots
):
    if os.geteuid() != 0:
        pytest.skip("the netns twin needs root")
    _user("olivia", "operator")
    _user("alice", "approver")
    _user("audrey", "auditor")
    base = live_server_url

    # The operator submits a static route on the core router r1 (criticality high: needs approval
    # under risk-rubric/2) to the real FRR twin of labs/triangle.
    page, js_errors = _sign_in(browser, base, "olivia", "/preflight/?lab=triangle")
    page.fill("#id_title", "Null-route 10.42.0.0/24 on r1")
    page.fill("#id_device_r1", "ip route 10.42.0.0/24 Null0\n")
    page.select_option("#id_backend", "netns")
    page.screenshot(path=str(shots / "operator-start.png"), full_page=True)
    page.click("#submit-change")
    page.wait_for_url(f"{base}/preflight/runs/**")
    # She watches the steps arrive over the websocket (the page has not reloaded yet) ...
    page.locator("#live.on").wait_for(timeout=15_000)
    page.locator("#step-spawn.ok, #step-spawn.started").first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "operator-run-live.png"), full_page=True)
    # ... and the verdict appears when the run finishes.
    page.locator(
        "#verdict.needs_approval, #verdict.ship_ready, #verdict.blocked, #verdict.failed"
    ).first.wait_for(timeout=180_000)
    page.locator("#routes-chart").wait_for()
    page.screenshot(path=str(shots / "operator-run-verdict.png"), full_page=True)
    run = PreflightRun.objects.get()
    assert (run.status, run.verdict, run.result["twin"]["tier"]) == ("finished", "needs_approval", "real"), (
        run.error
    )
    assert "Needs approval" in page.inner_text("#verdict")
    assert page.locator("#step-teardown.ok").count() == 1 and page.locator("#step-seal.ok").count() == 1
    assert js_errors == []

    # The approver approves it from the queue.
    page, js_errors = _sign_in(browser, base, "alice", "/promote/queue/")
    assert run.run_id in page.inner_text("#queue")
    page.screenshot(path=str(shots / "approver-queue.png"), full_page=True)
    page.click(f"a[href='/promote/runs/{run.run_id}/'] >> nth=0")
    page.fill("#id_comment", "Expected null route; rollback rehearsed.")
    page.screenshot(path=str(shots / "approver-decide.png"), full_page=True)
    page.click("#approve")
    page.wait_for_url(f"{base}/promote/queue/")
    assert "recorded: approve" in page.inner_text("main")
    assert run.approvals.get().approver.username == "alice" and js_errors == []

    # The auditor finds the bundle, downloads the PDF and verifies it.
    page, js_errors = _sign_in(browser, base, "audrey", "/evidence/bundles/")
    bundle = Bundle.objects.get(run_id=run.run_id)
    page.click(f"a[href='/evidence/bundles/{bundle.pk}/'] >> nth=0")
    with page.expect_download() as download:
        page.click("#download-pdf")
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    page.click("#verify-button")
    page.locator("#verify-result").wait_for()
    page.screenshot(path=str(shots / "auditor-verify.png"), full_page=True)
    assert "every check holds" in page.inner_text("#verify-result")
    assert page.locator("#checks .check-ok").count() >= 10 and js_errors == []
    # and no twin of this run is left behind
    leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert run.run_id not in leftovers
