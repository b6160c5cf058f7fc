"""`manage.py preflight LAB_DIR --change FILE`: verify one change on a twin and decide.

Exit codes: 0 ship_ready, 10 needs_approval, 20 blocked, 2 input error (nothing spawned).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from preflight.core.change import ChangeError, change_load
from preflight.core.guards import GuardRejection
from preflight.core.pipeline import run_id_new, run_preflight
from preflight.twin.base import TopologyError

EXIT_CODES = {"ship_ready": 0, "needs_approval": 10, "blocked": 20}
EXIT_INPUT_ERROR = 2
MAX_CHANGE_FILE_BYTES = 256 * 1024


class InputError(Exception):
    """Bad input: printed as one message that says what to fix, exit 2."""


class Command(BaseCommand):
    help = ("Preflight a change on a twin of the lab: static checks, spawn, apply, diff, invariants, "
            "rollback, verdict. Exit 0 ship_ready, 10 needs_approval, 20 blocked, 2 input error.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("lab_dir", help="lab folder with one *.clab.yml (e.g. labs/triangle)")
        parser.add_argument("--change", required=True, help="change file (YAML): title, devices, expect")
        parser.add_argument("--backend", default="netns", choices=["netns", "simulator"],
                            help="netns: real FRR in namespaces (needs root); simulator: seeded model")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
        parser.add_argument("--out", help="folder for result.json (default: a new folder under runs/)")
        parser.add_argument("--timeout", type=float, default=120.0, help="convergence bound in seconds")

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
        try:
            result = run_preflight(opts["lab_dir"], change, backend=opts["backend"], run_id=run_id,
                                   progress=printer, converge_timeout=opts["timeout"], topology=topology)
        except (ChangeError, GuardRejection, TopologyError) as exc:
            self._input_error(str(exc), as_json)
            return
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            result_path = out_dir / "result.json"
            result_path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
        except OSError as exc:
            self._input_error(f"cannot write the result into {out_dir}: {exc.strerror}; choose another --out",
                              as_json)
            return
        extra = after_result_written(result, out_dir=out_dir, lab_dir=Path(opts["lab_dir"]),
                                     change_path=Path(opts["change"]))
        if as_json:
            self.stdout.write(json.dumps({**result, "result_path": str(result_path), **extra}, sort_keys=False))
        else:
            self._summary(result, result_path)
        sys.exit(EXIT_CODES[result["verdict"]])

    # -- input --------------------------------------------------------------------------
    def _inputs(self, opts: dict[str, Any]) -> tuple[Any, dict[str, Any], Path | None]:
        from preflight.twin.topology import load_lab

        lab_dir = Path(opts["lab_dir"])
        if not lab_dir.exists():
            raise InputError(f"lab folder {lab_dir} does not exist; give a folder such as labs/triangle")
        try:
            topology = load_lab(lab_dir)
        except TopologyError as exc:
            raise InputError(f"the lab cannot be loaded: {exc}") from None
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
            raise InputError("the netns backend needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) to create "
                             "namespaces; run as root on a twin worker, or use --backend simulator")
        out = Path(opts["out"]) if opts.get("out") else None
        if out is not None and out.exists() and not out.is_dir():
            raise InputError(f"--out {out} exists and is not a folder")
        return topology, change, out

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
        rb = result.get("rollback") or {}
        if rb.get("lines"):
            self.stdout.write(f"rollback ({'verified' if rb.get('verified') else 'NOT verified'}):")
            for node, lines in rb["lines"].items():
                for ln in lines:
                    self.stdout.write(f"  {node}: {ln}")
        if result["twin"].get("tier") == "simulated":
            self.stdout.write(self.style.WARNING("twin tier: simulated (not promotable)"))
        self.stdout.write(f"result: {result_path}")


def after_result_written(result: dict[str, Any], *, out_dir: Path, lab_dir: Path, change_path: Path) -> dict[str, Any]:
    """What happens after result.json is written; returns extra keys for the --json output.

    Evidence sealing (bundle.json + report.pdf) and `--intent` (LLM) hook in here; the
    pipeline itself stays free of evidence/ and preflight/llm/ imports.
    """
    return {}


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
