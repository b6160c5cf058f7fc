"""`manage.py preflight LAB_DIR --change FILE | --intent TEXT | --desired DIR | --git A..B`: verify one change.

`--desired DIR` (NODE/frr.conf or NODE.conf per changed router) and `--git A..B` (the lab at A as
baseline, its router configs at B as the desired state) verify frr-reload's delta from the lab's
baseline, printed before the run (docs/ci.md). `--junit FILE` / `--markdown FILE` write the CI views.

The run goes the one way every run goes (`preflight.services.run_start`, executed inline in
this process): a `PreflightRun` row with its events and audit entry, result.json, and the seal
(bundle.json signed and ledgered, report.pdf) in the run's folder. So a change preflighted here
that needs approval is in the approvers' queue like any other. Exit codes: 0 ship_ready,
10 needs_approval, 20 blocked, 2 input error (nothing spawned), 3 the verdict stands but the
evidence could not be sealed, 130 interrupted (the twin was torn down).

To add an option: parse it in `add_arguments`, put it on the `Submission` in `_submission`
(a pipeline option goes into `options` and `services.execution.PIPELINE_OPTIONS`); what is
printed from the result goes in `_report`.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection

from evidence.models import Bundle
from preflight import services
from preflight.core.change import ChangeError
from preflight.core.desired import change_from_desired, delta_text, desired_read
from preflight.core.gitrange import git_desired
from preflight.core.guards import GuardRejection
from preflight.core.report import input_error_reports, junit_xml, markdown_summary
from preflight.core.resilience import failures_option
from preflight.models import PreflightRun
from twin import BACKENDS
from twin.base import TopologyError, TwinError

EXIT_CODES = {"ship_ready": 0, "needs_approval": 10, "blocked": 20}
EXIT_INPUT_ERROR = 2
EXIT_NOT_SEALED = 3
EXIT_INTERRUPTED = 130
MAX_CHANGE_FILE_BYTES = 256 * 1024


class InputError(Exception):
    """Bad input: printed as one message that says what to fix, exit 2."""


class Command(BaseCommand):
    help = ("Preflight a change on a twin of the lab: static checks, spawn, apply, diff, invariants, "
            "rollback, verdict. Exit 0 ship_ready, 10 needs_approval, 20 blocked, 2 input error.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("lab_dir", help="lab folder with one *.clab.yml (e.g. labs/triangle)")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--change", help="change file (YAML): title, devices, expect")
        source.add_argument("--intent", help="what the change should do, in words: the site's LLM proposes "
                                              "the config, which is then verified like any change")
        source.add_argument("--desired", metavar="DIR",
                            help="the intended full config per changed router (DIR/NODE/frr.conf or DIR/NODE.conf): "
                                 "frr-reload's delta from the lab's baseline is what is verified")
        source.add_argument("--git", metavar="REV_A..REV_B",
                            help="LAB is a lab folder in a git work tree: the lab at REV_A is the baseline, the router "
                                 "configs at REV_B the desired state (a wiring change is refused)")
        parser.add_argument("--title", help="title of a --desired / --git change (default: names the routers)")
        parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (one test case per check)")
        parser.add_argument("--markdown", metavar="FILE", help="write a Markdown summary for a merge request")
        parser.add_argument("--bundle-url", metavar="URL", help="link to the sealed bundle in the Markdown summary")
        parser.add_argument("--backend", default=settings.AEGIS_TWIN_BACKEND, choices=BACKENDS,
                            help="netns: real FRR in namespaces (needs root); simulator: seeded model; "
                                 "http: a remote twin agent (manage.py twin_agent). Default AEGIS_TWIN_BACKEND")
        parser.add_argument("--agent", action="append", metavar="URL",
                            help="twin agent URL for --backend http (repeat to split the lab across agents; "
                                 "default AEGIS_TWIN_AGENTS)")
        parser.add_argument("--agent-token-file", metavar="FILE",
                            help="bearer token file for the agents (default AEGIS_AGENT_TOKEN_FILE)")
        parser.add_argument("--failures", metavar="all|none|N",
                            help="failure scenarios run before and after the change: the lab's and one per link of "
                                 "the changed routers, at most AEGIS_FAILURE_SCENARIOS_MAX (default); all; none; "
                                 "or at most N")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
        parser.add_argument("--out", help="folder for the run's files (default: AEGIS_RUNS_DIR/<run id>)")
        parser.add_argument("--timeout", type=float, default=None,
                            help="convergence bound in seconds (default AEGIS_TWIN_CONVERGE_TIMEOUT_S)")
        parser.add_argument("--frameworks", help="comma-separated compliance frameworks for the crosswalk "
                                                 "(default: AEGIS_FRAMEWORKS)")
        parser.add_argument("--operator", help="who submits the change (default: the login name)")
        parser.add_argument("--no-seal", action="store_true",
                            help="write result.json only: no bundle, no ledger entry, no PDF")
        parser.add_argument("--warm", action="store_true",
                            help="run on a warm twin held by `manage.py twin_pool serve` (AEGIS_TWIN_POOL_SOCKET): "
                                 "seconds instead of a fresh twin's spawn and settling; without a holder the run "
                                 "is cold and says so. netns backend only (a twin agent keeps warm twins for http runs itself)")

    def handle(self, *args: Any, **opts: Any) -> None:
        as_json: bool = opts["json"]
        self._opts = opts
        try:
            operator, submission = self._submission(opts)
        except InputError as exc:
            self._input_error(str(exc), as_json)
            return
        printer = _ProgressPrinter(self.stderr if as_json else self.stdout, tty=self._isatty(as_json))
        _interrupt_on_signals()
        try:
            run = services.run_start(operator=operator, submission=submission,
                                     dispatch="warm" if opts["warm"] else "inline", observer=printer)
        except services.ChangeInvalid as exc:
            self._input_error(_invalid_message(exc, opts), as_json)
            return
        except PermissionError as exc:
            self._input_error(str(exc), as_json)
            return
        except KeyboardInterrupt as exc:
            # The pipeline's `finally` has torn the twin down by now; the run is failed, nothing is sealed.
            # With --warm the holder runs it: it sees the caller gone at the run's next step and does the same.
            self.stderr.write(f"interrupted ({exc or 'SIGINT'}): the twin was torn down; nothing was sealed."
                              if not opts["warm"] else
                              f"interrupted ({exc or 'SIGINT'}): the twin_pool holder stops the run at its next step "
                              "and tears its twin down (unless its rollback was already proven); nothing is sealed.")
            _exit_now(EXIT_INTERRUPTED)
        self._report(run, opts, as_json)

    # -- input --------------------------------------------------------------------------
    def _submission(self, opts: dict[str, Any]) -> tuple[Any, services.Submission]:
        """Check what only the command line can get wrong, and build the run's submission."""
        lab_path = Path(opts["lab_dir"])
        if not lab_path.exists():
            raise InputError(f"lab folder {lab_path} does not exist; give a folder such as labs/triangle")
        out = Path(opts["out"]) if opts.get("out") else None
        if out is not None and out.exists() and not out.is_dir():
            raise InputError(f"--out {out} exists and is not a folder")
        change_text = _change_text(Path(opts["change"])) if opts.get("change") else ""
        if opts["backend"] == "netns" and os.geteuid() != 0:
            raise InputError(NOT_ROOT)
        if opts.get("warm") and opts["backend"] != "netns":
            raise InputError("--warm keeps real FRR twins between runs: it needs --backend netns (with --backend "
                             "http the twin agent keeps warm twins itself, no flag needed: twin_agent --warm-mb)")
        _database_ready_check()
        try:
            lab = services.lab_for_folder(lab_path)
        except TopologyError as exc:
            raise InputError(f"the lab cannot be loaded: {exc}") from None
        try:
            operator = services.cli_operator(opts.get("operator") or _login_name())
        except PermissionError as exc:
            raise InputError(str(exc)) from None
        options: dict[str, Any] = {"warm": True} if opts.get("warm") else {}
        if opts.get("timeout") is not None:
            options["converge_timeout"] = opts["timeout"]
        try:
            failures = failures_option(opts.get("failures"))
        except ValueError as exc:
            raise InputError(f"--failures: {exc}") from None
        if failures is not None:
            options["failures"] = failures
        if opts["backend"] == "http":
            agents = opts.get("agent") or list(settings.AEGIS_TWIN_AGENTS)
            if not agents:
                raise InputError("--backend http needs an agent: --agent http://HOST:5757 (or set AEGIS_TWIN_AGENTS)")
            options["agents"] = agents
            if opts.get("agent_token_file"):
                options["agent_token_file"] = opts["agent_token_file"]
        intent = opts.get("intent") or ""
        desired, origin = None, ""
        if opts.get("desired") or opts.get("git"):
            lab, desired, origin = self._desired(opts, lab_path, lab)
        return operator, services.Submission(
            lab=lab,
            title=f"Intent: {intent}"[:200] if intent else (opts.get("title") or ""),
            desired=desired,
            desired_origin=origin,
            change_text=change_text,
            intent=intent,
            frameworks=[f.strip() for f in (opts.get("frameworks") or "").split(",") if f.strip()],
            backend=opts["backend"],
            source="llm" if intent else "file",
            options=options,
            folder=str(out.resolve()) if out is not None else "",
            seal=not opts["no_seal"],
            via="cli",
        )

    def _desired(self, opts: dict[str, Any], lab_path: Path, lab: Any) -> tuple[Any, dict[str, str], str]:
        """The lab row (for --git: the lab as committed at A), the desired configs, their origin; prints the delta."""
        try:
            if opts.get("git"):
                gd = git_desired(lab_path, opts["git"])
                try:
                    # The baseline at A is kept beside the runs (one folder per commit and lab), so the
                    # run's Lab row points at files that stay.
                    keep = Path(settings.AEGIS_RUNS_DIR) / "git-baselines" / f"{gd.rev_a[:12]}-{lab_path.resolve().name}"
                    if not keep.exists():
                        keep.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copytree(gd.baseline_dir, keep)
                    desired, origin = gd.desired, gd.origin
                finally:
                    gd.scratch.cleanup()
                lab = services.lab_for_folder(keep)
            else:
                desired, origin = desired_read(opts["desired"], services.lab_topology(lab)), f"--desired {opts['desired']}"
            preview = change_from_desired(services.lab_topology(lab), desired, origin=origin)
        except (ChangeError, GuardRejection, TopologyError, TwinError) as exc:
            raise InputError(str(exc)) from None
        stream = self.stderr if opts["json"] else self.stdout
        stream.write(f"desired state ({origin}):\n{delta_text(preview)}")
        return lab, desired, origin

    def _input_error(self, message: str, as_json: bool) -> None:
        opts = getattr(self, "_opts", {})
        if opts.get("junit") or opts.get("markdown"):
            xml, md = input_error_reports(message, lab=Path(opts.get("lab_dir") or "").name)
            _write_report(opts.get("junit"), xml)
            _write_report(opts.get("markdown"), md)
        if as_json:
            self.stdout.write(json.dumps({"error": "input", "message": message, "exit_code": EXIT_INPUT_ERROR}))
        else:
            self.stderr.write(f"input error: {message}\nnothing was spawned.")
        sys.exit(EXIT_INPUT_ERROR)

    def _isatty(self, as_json: bool) -> bool:
        stream = sys.stderr if as_json else sys.stdout
        return hasattr(stream, "isatty") and stream.isatty()

    # -- output -------------------------------------------------------------------------
    def _report(self, run: PreflightRun, opts: dict[str, Any], as_json: bool) -> None:
        """Print what the run left (its row, its files) and exit with the verdict's code."""
        if run.status == PreflightRun.STATUS_FAILED:
            failed = run.events.filter(step="run", status="failed").order_by("-seq").first()
            if failed is not None and failed.data.get("input_error"):
                self._input_error(run.error, as_json)
            raise CommandError(f"run {run.run_id} failed: {run.error}")
        result = run.result or {}
        # The run keeps its folder resolved (a worker may be elsewhere); the user sees it as they gave it.
        folder = Path(opts["out"]) if opts.get("out") else services.run_folder(run)
        result_path = folder / "result.json"
        extra = _seal_state(run, folder, sealing=not opts["no_seal"])
        seal = {"digest": extra.get("seal_digest"), "ledger_index": extra.get("ledger_index"),
                "bundle_path": extra.get("bundle_path"), "error": extra.get("seal_error")}
        _write_report(opts.get("junit"), junit_xml(result, seal=seal))
        _write_report(opts.get("markdown"), markdown_summary(result, seal=seal, bundle_url=opts.get("bundle_url")))
        if as_json:
            self.stdout.write(json.dumps({**result, "result_path": str(result_path), **extra}, sort_keys=False))
        else:
            self._summary(result, result_path)
            self._seal_summary(extra)
        if extra.get("seal_error"):
            sys.exit(EXIT_NOT_SEALED)
        sys.exit(EXIT_CODES[result["verdict"]])

    def _seal_summary(self, extra: dict[str, Any]) -> None:
        if extra.get("seal_error"):
            self.stderr.write(self.style.ERROR(f"evidence NOT sealed: {extra['seal_error']}"))
            return
        if not extra.get("seal_digest"):
            return
        self.stdout.write(f"sealed: {extra['seal_digest']}   (ledger index {extra['ledger_index']})")
        self.stdout.write(f"bundle: {extra['bundle_path']}")
        self.stdout.write(f"report: {extra['pdf_path']}")

    def _summary(self, result: dict[str, Any], result_path: Path) -> None:
        verdict = result["verdict"]
        style = {"ship_ready": self.style.SUCCESS, "needs_approval": self.style.WARNING,
                 "blocked": self.style.ERROR}[verdict]
        risk = result.get("risk") or {}
        self.stdout.write("")
        self.stdout.write(style(f"verdict: {verdict}") +
                          (f"   (risk {risk.get('tier')}, score {risk.get('score')}, {risk.get('rubric_version')})"
                           if risk else ""))
        for r in result["reasons"]:
            self.stdout.write(f"  - {r['code']}: {r['message']}")
        for f in result["static_findings"]:
            where = f"{f['device']}:{f['line_no']}" if f["line_no"] else f["device"]
            self.stdout.write(f"  [{f['severity']}] {where} {f['code']}: {f['message']}")
        intent = result.get("intent") or {}
        if intent:
            how = ("declared in expect" if intent.get("used") == "declared"
                   else "inferred from the lines; write an expect to correct it")
            self.stdout.write(f"intent ({how}):")
            for b in (intent.get("inferred") or {}).get("basis") or ["the lines intend no routing effect"]:
                self.stdout.write(f"  {b}")
        ledger = (result.get("apply") or {}).get("ledger") or {}
        if ledger.get("available"):
            sm = ledger.get("summary") or {}
            self.stdout.write("lines: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sm.items()))
            for node, led in (ledger.get("devices") or {}).items():
                for e in led["lines"]:
                    if e["status"] != "applied":
                        extra = f" -> {e['became']}" if e.get("became") else ""
                        said = f"  (FRR: {e['frr_said']})" if e.get("frr_said") else ""
                        self.stdout.write(f"  {node}:{e['line_no']} {e['status']}: {e['line']}{extra}{said}")
        settle = result.get("settle") or {}
        if settle.get("timer"):
            self.stdout.write(f"settle window: {settle['seconds']:g} s ({settle['timer']} of {settle['node']} "
                              f"{settle['subject']}: {settle['source']})")
        rb = result.get("rollback") or {}
        if rb.get("lines"):
            status = rb.get("status") or ("verified" if rb.get("verified") else "NOT verified")
            after = f" after {rb['restored_after_s']:g} s" if rb.get("restored_after_s") is not None else ""
            self.stdout.write(f"rollback ({status}{after}):")
            for node, lines in rb["lines"].items():
                for ln in lines:
                    self.stdout.write(f"  {node}: {ln}")
        if result["twin"].get("tier") == "simulated":
            self.stdout.write(self.style.WARNING("twin tier: simulated (not promotable)"))
        self.stdout.write(f"result: {result_path}")




NOT_ROOT = ("the netns backend needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) to create "
            "namespaces; run as root on a twin worker, or use --backend simulator")


def _write_report(path: str | None, text: str) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def _change_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"change file {path} does not exist")
    if path.stat().st_size > MAX_CHANGE_FILE_BYTES:
        raise InputError(f"change file {path} is larger than {MAX_CHANGE_FILE_BYTES // 1024} KiB")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"change file {path} is not UTF-8 text") from None


def _invalid_message(exc: services.ChangeInvalid, opts: dict[str, Any]) -> str:
    """The service's field errors as one line; a change-file error names the file."""
    parts = []
    for field, messages in exc.errors.items():
        text = " ".join(messages)
        parts.append(f"{opts['change']}: {text}" if field == "change" and opts.get("change") else text)
    return "; ".join(parts)


def _seal_state(run: PreflightRun, folder: Path, *, sealing: bool) -> dict[str, Any]:
    """What the seal left, for the summary and --json: the Bundle row, or why there is none."""
    if not sealing:
        return {}
    bundle = Bundle.objects.filter(run_id=run.run_id).first()
    if bundle is None:
        return {"seal_error": run.error.removeprefix("Sealing failed: ") or "the run was not sealed"}
    return {"seal_digest": bundle.digest, "bundle_path": str(folder / Path(bundle.json_path).name),
            "pdf_path": str(folder / Path(bundle.pdf_path).name),
            "ledger_index": bundle.ledger_index}


def _exit_now(code: int) -> None:
    """End the process after an interrupt, once the twin is down and the run recorded as failed.

    Not `sys.exit`: an interrupt can land while a library starts a worker thread (a thread pool
    that is never shut down: asgiref's per-call pool when an event is published to Redis is one),
    and the interpreter then waits at exit for that idle, unregistered thread forever. Seen in CI
    (every thread's stack: one idle pool worker, the main thread in threading._shutdown) after the
    message below had been printed. Everything this command owns is done by now: flush, close the
    database connection, leave."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        connection.close()
    except DatabaseError:
        pass
    os._exit(code)


def _interrupt_on_signals() -> None:
    """SIGTERM and SIGHUP interrupt the run like Ctrl-C, so `finally` tears the twin down.

    Python's default for SIGTERM is to die at once, which would leave the twin for the reaper.
    After the first signal the others are ignored: a second Ctrl-C must not cut the teardown short.
    """
    def interrupt(signum: int, _frame: Any) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _database_ready_check() -> None:
    """Every run is a row and its seal a ledger entry: refuse before the run if the database is not set up."""
    try:
        tables = set(connection.introspection.table_names())
    except DatabaseError as exc:
        raise InputError(f"the database is not reachable ({exc}); check DATABASE_URL") from None
    if not {PreflightRun._meta.db_table, Bundle._meta.db_table} <= tables:
        raise InputError("the database is not set up: run `./aegis setup` (or `manage.py migrate`)")


def _login_name() -> str:
    # Under sudo the person is SUDO_USER, not root.
    return os.environ.get("SUDO_USER") or getpass.getuser()


class _ProgressPrinter:
    """Prints each step as it runs: one line per event (overwritten in place on a terminal)."""

    def __init__(self, stream: Any, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.t0 = time.monotonic()

    def __call__(self, step: str, status: str, message: str, data: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.t0
        mark = {"started": "..", "ok": "ok", "failed": "!!", "info": "  "}.get(status, status)
        line = f"[{elapsed:6.1f}s] {mark} {step:<18} {message}"
        if self.tty and status == "started":
            self.stream.write(line, ending="\r")
            self.stream.flush()
        elif self.tty and status == "info":
            self.stream.write(line[:120].ljust(120), ending="\r")
            self.stream.flush()
        else:
            self.stream.write(line.ljust(80) if self.tty else line)
