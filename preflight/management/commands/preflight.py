"""`manage.py preflight LAB_DIR --change FILE | --intent TEXT`: verify one change on a twin and decide.

After the verdict the run is sealed: bundle.json (signed, ledgered) and report.pdf are written
beside result.json. Exit codes: 0 ship_ready, 10 needs_approval, 20 blocked, 2 input error
(nothing spawned), 3 the verdict stands but the evidence could not be sealed.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from compliance.catalogues import framework_list
from evidence.models import Bundle, LedgerEntry
from evidence.services import SealError, run_seal
from perimeter.egress import EgressRefused
from preflight.core.change import ChangeError, change_load
from preflight.core.guards import GuardRejection
from preflight.core.pipeline import run_id_new, run_preflight
from twin import get_backend
from twin.base import TopologyError, TwinError
from twin.topology import load_lab

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
        parser.add_argument("--backend", default="netns", choices=["netns", "simulator", "http"],
                            help="netns: real FRR in namespaces (needs root); simulator: seeded model; "
                                 "http: a remote twin agent (manage.py twin_agent)")
        parser.add_argument("--agent", action="append", metavar="URL",
                            help="twin agent URL for --backend http (repeat to split the lab across agents; "
                                 "default AEGIS_TWIN_AGENTS)")
        parser.add_argument("--agent-token-file", metavar="FILE",
                            help="bearer token file for the agents (default AEGIS_AGENT_TOKEN_FILE)")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
        parser.add_argument("--out", help="folder for result.json (default: a new folder under runs/)")
        parser.add_argument("--timeout", type=float, default=120.0, help="convergence bound in seconds")
        parser.add_argument("--frameworks", help="comma-separated compliance frameworks for the crosswalk "
                                                 "(default: AEGIS_FRAMEWORKS)")
        parser.add_argument("--operator", help="who submits the change (default: the login name)")
        parser.add_argument("--no-seal", action="store_true",
                            help="write result.json only: no bundle, no ledger entry, no PDF")

    def handle(self, *args: Any, **opts: Any) -> None:
        as_json: bool = opts["json"]
        try:
            topology, change, out_dir = self._inputs(opts)
        except InputError as exc:
            self._input_error(str(exc), as_json)
            return
        run_id = run_id_new()
        out_dir = out_dir or Path(settings.AEGIS_RUNS_DIR) / run_id
        printer = _ProgressPrinter(self.stderr if as_json else self.stdout, tty=self._isatty(as_json))
        _interrupt_on_signals()
        try:
            if change is None:
                result = _intent_run(opts, topology, run_id=run_id, progress=printer)
            else:
                result = run_preflight(opts["lab_dir"], change, backend=opts["twin_backend"], run_id=run_id,
                                       progress=printer, converge_timeout=opts["timeout"], topology=topology,
                                       default_criticality=settings.AEGIS_DEFAULT_CRITICALITY)
        except (ChangeError, GuardRejection, TopologyError) as exc:
            self._input_error(str(exc), as_json)
            return
        except InputError as exc:
            self._input_error(str(exc), as_json)
            return
        except KeyboardInterrupt as exc:
            # The pipeline's `finally` has torn the twin down by now; nothing is written or sealed.
            self.stderr.write(f"interrupted ({exc or 'SIGINT'}): the twin was torn down; nothing was sealed.")
            sys.exit(EXIT_INTERRUPTED)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            result_path = out_dir / "result.json"
            result_path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
        except OSError as exc:
            self._input_error(f"cannot write the result into {out_dir}: {exc.strerror}; choose another --out",
                              as_json)
            return
        extra = after_result_written(result, out_dir=out_dir, lab_dir=Path(opts["lab_dir"]),
                                     change_path=Path(opts["change"]) if opts.get("change") else None,
                                     seal=not opts["no_seal"], frameworks=self._frameworks(opts),
                                     operator=opts.get("operator") or _login_name())
        if as_json:
            self.stdout.write(json.dumps({**result, "result_path": str(result_path), **extra}, sort_keys=False))
        else:
            self._summary(result, result_path)
            self._seal_summary(extra)
        if extra.get("seal_error"):
            sys.exit(EXIT_NOT_SEALED)
        sys.exit(EXIT_CODES[result["verdict"]])

    # -- input --------------------------------------------------------------------------
    def _inputs(self, opts: dict[str, Any]) -> tuple[Any, dict[str, Any] | None, Path | None]:
        lab_dir = Path(opts["lab_dir"])
        if not lab_dir.exists():
            raise InputError(f"lab folder {lab_dir} does not exist; give a folder such as labs/triangle")
        try:
            topology = load_lab(lab_dir)
        except TopologyError as exc:
            raise InputError(f"the lab cannot be loaded: {exc}") from None
        out = Path(opts["out"]) if opts.get("out") else None
        if out is not None and out.exists() and not out.is_dir():
            raise InputError(f"--out {out} exists and is not a folder")
        self._frameworks(opts)
        opts["twin_backend"] = _twin_backend(opts)
        if not opts["no_seal"]:
            _database_ready_check()
        if opts.get("intent") is not None:
            if opts["backend"] == "netns" and os.geteuid() != 0:
                raise InputError(NOT_ROOT)
            return topology, None, out
        change_path = Path(opts["change"])
        if not change_path.is_file():
            raise InputError(f"change file {change_path} does not exist")
        if change_path.stat().st_size > MAX_CHANGE_FILE_BYTES:
            raise InputError(f"change file {change_path} is larger than {MAX_CHANGE_FILE_BYTES // 1024} KiB")
        try:
            text = change_path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"change file {change_path} is not UTF-8 text") from None
        try:
            change = change_load(text, topology)
        except ChangeError as exc:
            raise InputError(f"{change_path}: {exc}") from None
        if opts["backend"] == "netns" and os.geteuid() != 0:
            raise InputError(NOT_ROOT)
        return topology, change, out

    def _frameworks(self, opts: dict[str, Any]) -> list[str]:
        if not opts.get("frameworks"):
            return list(settings.AEGIS_FRAMEWORKS)
        wanted = [f.strip() for f in opts["frameworks"].split(",") if f.strip()]
        known = {f["id"] for f in framework_list()}
        unknown = [f for f in wanted if f not in known]
        if unknown:
            raise InputError(f"unknown framework {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
        return wanted

    def _input_error(self, message: str, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"error": "input", "message": message, "exit_code": EXIT_INPUT_ERROR}))
        else:
            self.stderr.write(f"input error: {message}\nnothing was spawned.")
        sys.exit(EXIT_INPUT_ERROR)

    def _isatty(self, as_json: bool) -> bool:
        stream = sys.stderr if as_json else sys.stdout
        return hasattr(stream, "isatty") and stream.isatty()

    # -- output -------------------------------------------------------------------------
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
    """Sealing appends to the ledger in the database: refuse before the run if it is not set up."""
    from django.db import DatabaseError, connection


    try:
        tables = set(connection.introspection.table_names())
    except DatabaseError as exc:
        raise InputError(f"the database is not reachable ({exc}); check DATABASE_URL") from None
    if not {LedgerEntry._meta.db_table, Bundle._meta.db_table} <= tables:
        raise InputError("the database is not set up for sealing: run `./aegis setup` (or `manage.py migrate`), "
                         "or pass --no-seal for result.json only")


def _login_name() -> str:
    # Under sudo the person is SUDO_USER, not root.
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _twin_backend(opts: dict[str, Any]) -> Any:
    """The backend name, or for `http` the agent client(s) built from the options and settings."""
    if opts["backend"] != "http":
        return opts["backend"]
    agents = opts.get("agent") or list(settings.AEGIS_TWIN_AGENTS)
    if not agents:
        raise InputError("--backend http needs an agent: --agent http://HOST:5757 (or set AEGIS_TWIN_AGENTS)")
    try:
        return get_backend("http", agents=agents, allow=list(settings.AEGIS_EGRESS_ALLOW),
                           token_file=opts.get("agent_token_file") or settings.AEGIS_AGENT_TOKEN_FILE or None)
    except TwinError as exc:
        raise InputError(str(exc)) from None


def _intent_run(opts: dict[str, Any], topology: Any, *, run_id: str, progress: Any) -> dict[str, Any]:
    """Ask the site's LLM for a change and verify it like any other; input errors become InputError."""
    from preflight.llm.config import LLMConfigError, llm_config_from_settings
    from preflight.llm.intent import IntentRejected
    from preflight.llm.run import preflight_intent

    try:
        return preflight_intent(opts["lab_dir"], opts["intent"], config=llm_config_from_settings(settings),
                                topology=topology, progress=progress, run_id=run_id,
                                backend=opts["twin_backend"], converge_timeout=opts["timeout"],
                                default_criticality=settings.AEGIS_DEFAULT_CRITICALITY)
    except IntentRejected as exc:
        raise InputError(f"intent refused: {exc}") from None
    except LLMConfigError as exc:
        raise InputError(f"LLM not usable: {exc}") from None
    except EgressRefused as exc:
        raise InputError(str(exc)) from None


def after_result_written(result: dict[str, Any], *, out_dir: Path, lab_dir: Path, change_path: Path | None,
                         seal: bool = True, frameworks: list[str] | None = None,
                         operator: str | None = None) -> dict[str, Any]:
    """Seal the run beside result.json (bundle.json, report.pdf, ledger entry); return keys for --json.

    The pipeline stays free of evidence/ imports; the command is the shell that joins them.
    A sealing failure does not change the verdict: it is reported and the command exits 3.
    """
    if not seal:
        return {}
    change_text = change_path.read_text(encoding="utf-8") if change_path is not None else None
    try:
        outcome = run_seal(result, lab_dir=lab_dir, change_text=change_text, out_dir=out_dir,
                           frameworks=frameworks, operator=operator)
    except SealError as exc:
        return {"seal_error": str(exc)}
    return {"seal_digest": outcome.digest, "bundle_path": str(outcome.bundle_path),
            "pdf_path": str(outcome.pdf_path), "ledger_index": outcome.ledger_index}


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
