"""FRR over SSH: netmiko `device_type="linux"`, running `vtysh` and `frr-reload.py` on the router.

Why a Linux login and not vtysh as the login shell: FRR has no candidate config (vtysh applies
every line at once), so a safe dry-run needs FRR's own `frr-reload.py --test`, which runs in
the router's shell (notes: /work/shared/notes/TWIN.md §5, option B).

- dry-run: upload the candidate (the whole target config) to a temp file, `vtysh --dryrun -f`
  (FRR's parser; syntax only), then `frr-reload.py --test` prints "Lines To Delete / Lines To
  Add" against `show running-config`. Nothing is applied; the temp file is removed.
- live: the same checks, then `frr-reload.py --reload` (applies only the delta, sessions not
  touched by it stay up) and `frr-reload.py --test` again: the remaining delta must be empty,
  and only then `write memory`. A reload that did not fully take is not saved, so the startup
  config stays the last good one. State is read back with `state()` for verification.

The router needs: an account in group `frrvty` that may run `sudo -n` for frr-reload.py (or
root), python3 and the `frr-pythontools` package, and
`service integrated-vtysh-config` (FRR's default), which `frr-reload.py --reload` requires.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
import uuid
from typing import Any

from aegis_base.core.files import sha256_digest
from perimeter.egress import EgressRefused, egress_check
from promote.connectors.base import ApplyResult, ConnectorError, DeviceSpec, DryRunResult, NetmikoSession

FRR_RELOAD = "/usr/lib/frr/frr-reload.py"
# vtysh prints these for lines it refuses; they mean the step failed even when rc is 0.
VTYSH_ERROR = re.compile(r"% Unknown command|% Invalid|% Command incomplete|% Ambiguous|line \d+: %")
# Output of one command is framed by markers printed by the shell, tagged per command; the echoed
# command line (which the terminal may wrap) never matches the end marker because it holds `$?`,
# not digits, and output left over from an earlier command never matches another command's tag.


def _framed(tag: str) -> re.Pattern[str]:
    return re.compile(rf"(?ms)^__AEGIS_BEGIN_{tag}\n(.*?)^__AEGIS_RC_{tag}=(\d+)$")


# Keep each shell line well below the 4095-byte limit of a terminal in canonical mode.
_UPLOAD_CHUNK = 768


def reload_delta(output: str) -> tuple[list[str], list[str]]:
    """Parse `frr-reload.py --test` output into (lines_to_delete, lines_to_add)."""
    delete: list[str] = []
    add: list[str] = []
    current: list[str] | None = None
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line.strip() in ("Lines To Delete", "Lines To Add") and set(nxt) == {"="}:
            current = delete if line.strip() == "Lines To Delete" else add
            i += 2
            continue
        if current is not None and line.strip():
            # frr-reload logs go to stderr in the same stream: "2026-.. INFO: ..." is not a delta line
            if not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line):
                current.append(line)
        i += 1
    return delete, add


def ip_route_json_normalize(data: dict[str, Any]) -> dict[str, Any]:
    """`show ip route json` -> {prefix: {protocol, distance, metric, nexthops}} of selected entries.

    Same rules as the twin's snapshot (twin/base.py docstring): only selected
    entries, next hops as sorted "ip@iface" strings; volatile fields (uptime, ids) dropped.
    """
    routes: dict[str, Any] = {}
    for prefix, entries in data.items():
        for e in entries:
            if not e.get("selected"):
                continue
            hops = []
            for nh in e.get("nexthops", []):
                if nh.get("active") is False:
                    continue
                if nh.get("unreachable") or nh.get("blackhole"):
                    hops.append("blackhole")
                else:
                    hops.append(f"{nh.get('ip', '')}@{nh.get('interfaceName', '')}")
            routes[prefix] = {
                "protocol": e.get("protocol"),
                "distance": e.get("distance"),
                "metric": e.get("metric"),
                "nexthops": sorted(hops),
            }
    return routes


def bgp_summary_normalize(data: dict[str, Any]) -> dict[str, Any]:
    """`show bgp summary json` -> {peer: {state, remote_as, local_as, pfx_rcd, pfx_snt}}."""
    peers: dict[str, Any] = {}
    for afi in ("ipv4Unicast", "ipv6Unicast"):
        block = data.get(afi) or {}
        for peer, p in (block.get("peers") or {}).items():
            entry = peers.setdefault(
                peer,
                {
                    "state": p.get("state"),
                    "remote_as": p.get("remoteAs"),
                    "local_as": p.get("localAs", block.get("as")),
                    "pfx_rcd": 0,
                    "pfx_snt": 0,
                },
            )
            entry["pfx_rcd"] += int(p.get("pfxRcd", 0) or 0)
            entry["pfx_snt"] += int(p.get("pfxSnt", 0) or 0)
    return peers


def _json_of(output: str) -> dict[str, Any]:
    """Parse vtysh JSON, tolerating banners or warnings printed before it."""
    start = output.find("{")
    if start < 0:
        return {}
    return json.loads(output[start:])


class FrrSshConnector(NetmikoSession):
    """One SSH session to an FRR router. See the module docstring."""

    platform = "frr"

    def __init__(self, spec: DeviceSpec, *, purpose: str = "promotion device") -> None:
        self.spec = spec
        self.purpose = purpose
        self._conn: Any = None
        self.address: str | None = None
        self.transcript: list[dict[str, Any]] = []  # every command and its rc, for the record

    # -- session -----------------------------------------------------------------------------

    def open(self) -> FrrSshConnector:
        from netmiko import ConnectHandler
        from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException


        try:
            # Refused before any socket opens when the device is outside the allowed networks;
            # we then connect to the address the policy approved, not a second resolution.
            self.address = egress_check(self.spec.host, self.spec.port, self.purpose)
        except EgressRefused as exc:
            raise ConnectorError(f"{self.spec.name}: {exc}") from exc
        params: dict[str, Any] = {
            "device_type": "linux",
            "host": self.address,
            "port": self.spec.port,
            "username": self.spec.username,
            "allow_agent": False,
            "conn_timeout": self.spec.timeout,
            "auth_timeout": self.spec.timeout,
            "banner_timeout": self.spec.timeout,
        }
        if self.spec.key_file:
            params.update(use_keys=True, key_file=self.spec.key_file)
        if self.spec.password:
            params["password"] = self.spec.password
        if self.spec.known_hosts:
            # Refuse a device whose host key is not the one on file (no trust on first use).
            params.update(
                ssh_strict=True,
                system_host_keys=False,
                alt_host_keys=True,
                alt_key_file=self.spec.known_hosts,
            )
        where = f"{self.spec.username}@{self.spec.host}:{self.spec.port}"
        try:
            self._conn = ConnectHandler(**params)
        except NetmikoAuthenticationException as exc:
            raise ConnectorError(
                f"{self.spec.name}: SSH login refused for {where}: check the user and key "
                f"file ({exc.__class__.__name__})"
            ) from exc
        except NetmikoTimeoutException as exc:
            text = str(exc)
            if "SSHException" in text:  # netmiko wraps paramiko's errors, e.g. a host key mismatch
                detail = text.split("creation:", 1)[-1].strip()
                hint = (
                    " (the device's host key is not the one pinned in known_hosts)"
                    if ("host key" in detail.lower() or "known_hosts" in detail)
                    else ""
                )
                raise ConnectorError(f"{self.spec.name}: SSH to {where} failed: {detail}{hint}") from exc
            raise ConnectorError(
                f"{self.spec.name}: no SSH answer from {where} within {self.spec.timeout:.0f}s"
            ) from exc
        except Exception as exc:  # paramiko raises its own types (e.g. BadHostKeyException)
            raise ConnectorError(f"{self.spec.name}: SSH to {where} failed: {exc}") from exc
        return self

    def _sh(self, command: str, *, timeout: float = 60.0, record: bool = True) -> tuple[int, str]:
        """Run a shell command on the router; return (exit status, output)."""
        if self._conn is None:
            raise ConnectorError(f"{self.spec.name}: not connected")
        tag = uuid.uuid4().hex[:12]
        try:
            # cmd_verify=False: a long command wraps in the terminal and its echo cannot be matched.
            # expect_string: read until this command's own end marker (with its whole exit status
            # and the line end after it), not until something looks like the prompt. Waiting for
            # the prompt made netmiko send a bare newline first to learn it (find_prompt); when the
            # prompt answering that newline arrived late it ended the *next* read at once, with
            # only '\n' read (seen once in the end-to-end promotion test on a loaded host).
            raw = self._conn.send_command(
                # The exit status is taken before the `echo` that ends output lacking a final newline
                # (the end marker must start a line of its own; the extra blank line is stripped).
                f"echo __AEGIS_BEGIN_{tag}; {command}; __aegis_rc=$?; echo; echo __AEGIS_RC_{tag}=$__aegis_rc",
                expect_string=rf"__AEGIS_RC_{tag}=\d+\r?\n",
                read_timeout=timeout,
                cmd_verify=False,
                strip_prompt=False,
                strip_command=False,
            )
        except Exception as exc:
            raise ConnectorError(
                f"{self.spec.name}: command failed on the device: {command[:60]}: {exc}"
            ) from exc
        found = _framed(tag).search(raw.replace("\r\n", "\n"))
        if found is None:
            raise ConnectorError(f"{self.spec.name}: no complete answer to {command[:60]!r}: {raw[-200:]!r}")
        out, rc = found.group(1).rstrip(), int(found.group(2))
        if record:
            self.transcript.append({"command": command, "rc": rc})
        return rc, out

    def _priv(self, command: str) -> str:
        return f"sudo -n {command}" if self.spec.use_sudo else command

    def _vtysh(self, *commands: str) -> str:
        args = " ".join(f"-c {shlex.quote(c)}" for c in commands)
        rc, out = self._sh(f"vtysh {args} 2>/dev/null")
        if rc != 0:
            raise ConnectorError(f"{self.spec.name}: vtysh {commands[0]!r} failed (rc {rc}): {out[-300:]}")
        return out

    # -- reads -------------------------------------------------------------------------------

    def running_config(self) -> str:
        return self._vtysh("show running-config")

    def state(self) -> dict[str, Any]:
        routes = ip_route_json_normalize(_json_of(self._vtysh("show ip route json")))
        routes.update(ip_route_json_normalize(_json_of(self._vtysh("show ipv6 route json"))))
        bgp = bgp_summary_normalize(_json_of(self._vtysh("show bgp summary json")))
        return {"routes": routes, "bgp": bgp}

    # -- candidate handling ------------------------------------------------------------------

    def _upload(self, text: str) -> str:
        """Write `text` to a temp file on the router and check its digest; return the path."""
        path = f"/tmp/aegis-candidate-{uuid.uuid4().hex[:12]}.conf"
        b64 = base64.b64encode(text.encode()).decode()
        rc, out = self._sh(f"umask 077 && : > {path}.b64", record=False)
        if rc != 0:
            raise ConnectorError(f"{self.spec.name}: cannot write {path}: {out}")
        for i in range(0, len(b64), _UPLOAD_CHUNK):
            rc, out = self._sh(f"printf %s {b64[i : i + _UPLOAD_CHUNK]} >> {path}.b64", record=False)
            if rc != 0:
                raise ConnectorError(f"{self.spec.name}: upload of the candidate failed: {out}")
        rc, out = self._sh(
            f"base64 -d {path}.b64 > {path} && rm -f {path}.b64 && chmod 644 {path} && sha256sum {path}"
        )
        want = hashlib.sha256(text.encode()).hexdigest()
        if rc != 0 or want not in out:
            self._remove(path)
            raise ConnectorError(
                f"{self.spec.name}: the uploaded candidate does not match its digest "
                f"(sha256 {want[:12]}…): {out[-200:]}"
            )
        self.transcript.append({"command": f"upload candidate sha256:{want} -> {path}", "rc": 0})
        return path

    def _remove(self, path: str) -> None:
        self._sh(f"rm -f {path} {path}.b64", record=False)

    def _syntax(self, path: str) -> tuple[bool, list[str], str]:
        rc, out = self._sh(f"vtysh --dryrun -f {path} 2>&1")
        errors = [line.strip() for line in out.splitlines() if VTYSH_ERROR.search(line)]
        return rc == 0 and not errors, errors or ([] if rc == 0 else [f"vtysh --dryrun exited {rc}"]), out

    def _delta(self, path: str) -> tuple[list[str], list[str], str]:
        rc, out = self._sh(self._priv(f"{FRR_RELOAD} --test --log-level error {path} 2>&1"))
        if rc != 0:
            raise ConnectorError(f"{self.spec.name}: frr-reload.py --test failed (rc {rc}): {out[-400:]}")
        delete, add = reload_delta(out)
        return delete, add, out

    def config_delta(self, target: str) -> tuple[list[str], list[str]]:
        """(lines_to_delete, lines_to_add) frr-reload.py would apply to reach `target`; applies nothing."""
        path = self._upload(target)
        try:
            delete, add, _ = self._delta(path)
            return delete, add
        finally:
            self._remove(path)

    def dry_run(self, candidate: str) -> DryRunResult:
        digest = sha256_digest(candidate)
        path = self._upload(candidate)
        try:
            ok, errors, syntax_out = self._syntax(path)
            if not ok:
                return DryRunResult(self.spec.name, self.platform, False, errors, [], [], syntax_out, digest)
            delete, add, out = self._delta(path)
            return DryRunResult(
                self.spec.name, self.platform, True, [], delete, add, f"{syntax_out}\n{out}".strip(), digest
            )
        finally:
            self._remove(path)

    def apply(self, candidate: str) -> ApplyResult:
        path = self._upload(candidate)
        outputs: list[str] = []
        try:
            ok, errors, syntax_out = self._syntax(path)
            outputs.append(syntax_out)
            if not ok:
                return ApplyResult(
                    self.spec.name,
                    self.platform,
                    False,
                    False,
                    [],
                    [],
                    output="\n".join(outputs),
                    error="candidate refused by vtysh --dryrun: " + "; ".join(errors),
                )
            delete, add, test_out = self._delta(path)
            outputs.append(test_out)
            rc, out = self._sh(self._priv(f"{FRR_RELOAD} --reload --stdout {path} 2>&1"), timeout=120)
            outputs.append(out)
            if rc != 0:
                return ApplyResult(
                    self.spec.name,
                    self.platform,
                    False,
                    False,
                    delete,
                    add,
                    output="\n".join(outputs),
                    error=f"frr-reload.py --reload exited {rc}",
                )
            # Read back before saving: the running config against the candidate once more.
            rest_del, rest_add, rest_out = self._delta(path)
            outputs.append(rest_out)
            remaining = [f"- {x}" for x in rest_del] + [f"+ {x}" for x in rest_add]
            if remaining:
                # Not saved on purpose: the startup config stays the last good one, so a restart
                # of FRR returns the router to it; the record shows what did not take.
                return ApplyResult(
                    self.spec.name,
                    self.platform,
                    False,
                    False,
                    delete,
                    add,
                    remaining,
                    output="\n".join(outputs),
                    error="running config still differs from the candidate after reload "
                    f"({len(remaining)} line(s)); not saved, the startup config is unchanged",
                )
            rc, out = self._sh(self._priv("vtysh -c 'write memory' 2>&1"))
            outputs.append(out)
            saved = rc == 0 and not VTYSH_ERROR.search(out)
            return ApplyResult(
                self.spec.name,
                self.platform,
                True,
                saved,
                delete,
                add,
                [],
                output="\n".join(outputs),
                error="" if saved else "write memory failed",
            )
        finally:
            self._remove(path)
