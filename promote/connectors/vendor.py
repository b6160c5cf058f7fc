"""Dry-run drivers for vendor gear over netmiko: Cisco IOS, Arista EOS, Juniper Junos.

CANNOT RUN HERE: these talk to real vendor devices, and none exists in this environment
(no images, no Docker). What the tests check without a device is the part that decides
safety: the exact command sequence each driver sends (it must end by discarding the
candidate) and the parsing of each platform's diff output. docs/promotion.md says the same.

Live promotion is FRR-only for now: these drivers raise `NotSupportedHere` on `apply`.

How each platform shows a candidate's delta without applying it:

- **arista_eos**: a configuration session holds a real candidate. `configure session
  <name>`, `rollback clean-config` (start from empty, so the candidate *replaces* the
  running config), the candidate lines, `show session-config diffs` (unified diff against
  running), `abort` (the session is discarded, nothing is committed).
- **juniper_junos**: the candidate database. `configure private`, `load override terminal`
  with the candidate text and Ctrl-D, `show | compare` (the delta), `commit check` (the
  platform's own validation), `rollback 0` and `exit configuration-mode` (discarded).
- **cisco_ios**: classic IOS has no candidate config. The candidate is copied to flash and
  compared with `show archive config differences flash:<file> system:running-config`
  (the contextual config diff), then the file is deleted. Syntax is only checked by the
  device when the config is applied, so `syntax_ok` means "the diff could be computed".
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from aegis_base.core.files import sha256_digest
from perimeter.egress import EgressRefused, egress_check
from promote.connectors.base import ConnectorError, DeviceSpec, DryRunResult, NetmikoSession, NotSupportedHere

# netmiko device types per platform
DEVICE_TYPES = {"cisco_ios": "cisco_ios", "arista_eos": "arista_eos", "juniper_junos": "juniper_junos"}
ERROR_PATTERNS = {
    "cisco_ios": r"% Invalid input|% Incomplete command|% Ambiguous command|%Error",
    "arista_eos": r"% Invalid input|% Incomplete command|% Ambiguous command|% Error",
    "juniper_junos": r"syntax error|error:|unknown command",
}


@dataclass(frozen=True)
class Step:
    """One thing sent to the device: a command (expecting the prompt) or raw text."""

    kind: str  # "command" | "text" (raw lines, e.g. a Junos terminal load) | "config" (config-mode lines)
    payload: str | list[str]
    capture: str = ""  # name under which the output is kept ("diff", "check")


def _lines(candidate: str, comment: str) -> list[str]:
    return [ln.rstrip() for ln in candidate.splitlines() if ln.strip() and not ln.strip().startswith(comment)]


def eos_dry_run_steps(candidate: str, session: str) -> list[Step]:
    return [
        Step("command", f"configure session {session}"),
        Step("command", "rollback clean-config"),
        Step("config", [ln for ln in _lines(candidate, "!") if ln.strip() != "end"]),
        Step("command", "show session-config diffs", capture="diff"),
        Step("command", "abort"),
    ]


def junos_dry_run_steps(candidate: str) -> list[Step]:
    return [
        Step("command", "configure private"),
        Step("command", "load override terminal"),
        Step("text", candidate.rstrip("\n") + "\n\x04"),  # Ctrl-D ends the terminal load
        Step("command", "show | compare", capture="diff"),
        Step("command", "commit check", capture="check"),
        Step("command", "rollback 0"),
        Step("command", "exit configuration-mode"),
    ]


def ios_dry_run_steps(filename: str) -> list[Step]:
    # The candidate file itself is copied with netmiko's SCP file transfer before these run.
    return [
        Step(
            "command",
            f"show archive config differences flash:{filename} system:running-config",
            capture="diff",
        ),
        Step("command", f"delete /force flash:{filename}"),
    ]


def unified_delta(diff: str) -> tuple[list[str], list[str]]:
    """(lines_to_delete, lines_to_add) from a unified / compare diff (+/- lines).

    Used for EOS `show session-config diffs` and Junos `show | compare`; file headers
    (`---`, `+++`) and hunk markers are skipped.
    """
    delete: list[str] = []
    add: list[str] = []
    for line in diff.splitlines():
        if line.startswith(("---", "+++", "@@", "[edit")):
            continue
        if line.startswith("+"):
            add.append(line[1:].rstrip())
        elif line.startswith("-"):
            delete.append(line[1:].rstrip())
    return delete, add


def ios_archive_delta(diff: str) -> tuple[list[str], list[str]]:
    """Parse `show archive config differences FILE system:running-config`.

    The first file is the candidate: lines marked `-` are only in the candidate (they would
    be added), lines marked `+` only in the running config (they would be removed).
    "!No changes were found" means no delta.
    """
    if "No changes were found" in diff:
        return [], []
    delete: list[str] = []
    add: list[str] = []
    for line in diff.splitlines():
        s = line.strip()
        if s.startswith("!Contextual Config Diffs") or not s:
            continue
        m = re.match(r"^(\s*)([+-])(.*)$", line)
        if not m:
            continue
        (add if m.group(2) == "-" else delete).append((m.group(1) + m.group(3)).rstrip())
    return delete, add


class VendorDryRunConnector(NetmikoSession):
    """netmiko dry-run driver for one vendor platform. CANNOT RUN HERE (no devices)."""

    def __init__(self, spec: DeviceSpec) -> None:
        if spec.platform not in DEVICE_TYPES:
            raise ConnectorError(f"{spec.name}: no vendor driver for {spec.platform!r}")
        self.spec = spec
        self.platform = spec.platform
        self._conn: Any = None

    def open(self) -> VendorDryRunConnector:
        from netmiko import ConnectHandler


        try:
            address = egress_check(self.spec.host, self.spec.port, "promotion device")
        except EgressRefused as exc:
            raise ConnectorError(f"{self.spec.name}: {exc}") from exc
        params: dict[str, Any] = {
            "device_type": DEVICE_TYPES[self.platform],
            "host": address,
            "port": self.spec.port,
            "username": self.spec.username,
            "conn_timeout": self.spec.timeout,
        }
        if self.spec.key_file:
            params.update(use_keys=True, key_file=self.spec.key_file)
        if self.spec.password:
            params["password"] = self.spec.password
        try:
            self._conn = ConnectHandler(**params)
        except Exception as exc:
            raise ConnectorError(
                f"{self.spec.name}: SSH to {self.spec.host}:{self.spec.port} failed: {exc}"
            ) from exc
        return self

    def running_config(self) -> str:
        command = "show configuration" if self.platform == "juniper_junos" else "show running-config"
        return str(self._conn.send_command(command, read_timeout=60))

    def state(self) -> dict[str, Any]:
        raise NotSupportedHere(f"{self.spec.name}: state read-back is implemented for FRR only")

    def apply(self, candidate: str) -> Any:
        raise NotSupportedHere(
            f"{self.spec.name}: live promotion is implemented for FRR only; {self.platform} supports dry-run"
        )

    def dry_run(self, candidate: str) -> DryRunResult:
        digest = sha256_digest(candidate)
        if self.platform == "arista_eos":
            steps = eos_dry_run_steps(candidate, f"aegis-{uuid.uuid4().hex[:8]}")
        elif self.platform == "juniper_junos":
            steps = junos_dry_run_steps(candidate)
        else:
            filename = f"aegis-candidate-{uuid.uuid4().hex[:8]}.cfg"
            self._ios_upload(candidate, filename)
            steps = ios_dry_run_steps(filename)
        outputs, captured = self._run(steps)
        parse = ios_archive_delta if self.platform == "cisco_ios" else unified_delta
        delete, add = parse(captured.get("diff", ""))
        errors = [
            ln.strip()
            for ln in "\n".join(outputs).splitlines()
            if re.search(ERROR_PATTERNS[self.platform], ln)
        ]
        return DryRunResult(
            self.spec.name, self.platform, not errors, errors, delete, add, "\n".join(outputs), digest
        )

    def _ios_upload(self, candidate: str, filename: str) -> None:
        import tempfile

        from netmiko import file_transfer

        with tempfile.NamedTemporaryFile("w", suffix=".cfg") as fh:
            fh.write(candidate)
            fh.flush()
            file_transfer(
                self._conn,
                source_file=fh.name,
                dest_file=filename,
                file_system="flash:",
                direction="put",
                overwrite_file=True,
            )

    def _run(self, steps: list[Step]) -> tuple[list[str], dict[str, str]]:
        outputs: list[str] = []
        captured: dict[str, str] = {}
        for step in steps:
            if step.kind == "config":
                out = self._conn.send_config_set(
                    step.payload, enter_config_mode=False, exit_config_mode=False, cmd_verify=False
                )
            elif step.kind == "text":
                self._conn.write_channel(str(step.payload))
                out = self._conn.read_until_prompt(read_timeout=60)
            else:
                out = self._conn.send_command(str(step.payload), read_timeout=60, cmd_verify=False)
            outputs.append(str(out))
            if step.capture:
                captured[step.capture] = str(out)
        return outputs, captured


def vendor_connector(spec: DeviceSpec) -> VendorDryRunConnector:
    return VendorDryRunConnector(spec)
