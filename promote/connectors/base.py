"""The `Connector` protocol: how the promotion core talks to one device.

A connector is a thin adapter around one SSH session. It never decides anything: the gate
(`promote/core/gate.py`) decides whether and how to promote; the connector reads the running
config, shows what a candidate would change (dry-run), applies it (live, FRR only) and reads
state back. Plain dataclasses in and out, no Django.

Every connector opens its connection through `perimeter.egress.egress_check`, so a device
outside the site's allowed networks is refused before a socket opens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Self


class ConnectorError(RuntimeError):
    """The device could not be reached or refused a step. The message says which and why."""


class NotSupportedHere(ConnectorError):
    """A platform feature this connector does not offer (e.g. live promotion on vendor gear)."""


@dataclass(frozen=True)
class DeviceSpec:
    """Where a device is and how to log in. Secrets stay in the key file, never in records."""

    name: str
    host: str
    platform: str = "frr"  # frr | cisco_ios | arista_eos | juniper_junos
    port: int = 22
    username: str = "aegis"
    key_file: str | None = None
    password: str | None = None  # only when a site has no keys; never recorded
    use_sudo: bool = False  # FRR: run frr-reload.py / vtysh through `sudo -n`
    timeout: float = 20.0
    # The SSH host key the device must present (OpenSSH known_hosts line or file); None = trust on first use.
    known_hosts: str | None = None

    def describe(self) -> dict[str, Any]:
        """The spec as recorded in a promotion record (no password)."""
        d = asdict(self)
        d.pop("password")
        return d


class InventoryError(ValueError):
    """A device inventory entry that cannot be used; the message names the device and field."""


PLATFORM_NAMES = ("frr", "cisco_ios", "arista_eos", "juniper_junos")
_SPEC_FIELDS = {
    "host",
    "platform",
    "port",
    "username",
    "key_file",
    "password",
    "use_sudo",
    "timeout",
    "known_hosts",
}


def device_inventory_load(data: Any) -> dict[str, DeviceSpec]:
    """Validate an inventory mapping `{devices: {name: {host, port, ...}}}` (e.g. parsed YAML).

    Every problem is reported at once, each naming the device and the field to fix.
    """
    if not isinstance(data, dict) or not isinstance(data.get("devices"), dict) or not data["devices"]:
        raise InventoryError("inventory: expected a mapping with a non-empty `devices:` section")
    specs: dict[str, DeviceSpec] = {}
    problems: list[str] = []
    for name, entry in data["devices"].items():
        where = f"devices.{name}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with at least `host`")
            continue
        unknown = sorted(set(entry) - _SPEC_FIELDS)
        if unknown:
            problems.append(
                f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_SPEC_FIELDS))}"
            )
        host = entry.get("host")
        if not isinstance(host, str) or not host.strip():
            problems.append(f"{where}.host: missing (the device's management address or name)")
        port = entry.get("port", 22)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            problems.append(f"{where}.port: must be a whole number 1-65535, got {port!r}")
        platform = entry.get("platform", "frr")
        if platform not in PLATFORM_NAMES:
            problems.append(f"{where}.platform: {platform!r} is not one of {', '.join(PLATFORM_NAMES)}")
        timeout = entry.get("timeout", 20.0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            problems.append(f"{where}.timeout: must be a positive number of seconds")
        if not isinstance(entry.get("use_sudo", False), bool):
            problems.append(f"{where}.use_sudo: must be true or false")
        for key in ("username", "key_file", "password", "known_hosts"):
            if key in entry and not isinstance(entry[key], str):
                problems.append(f"{where}.{key}: must be text")
        if not entry.get("key_file") and not entry.get("password"):
            problems.append(f"{where}: give `key_file` (an SSH private key) or, failing that, `password`")
        if not problems or not any(p.startswith(where) for p in problems):
            specs[str(name)] = DeviceSpec(
                name=str(name), **{k: v for k, v in entry.items() if k in _SPEC_FIELDS}
            )
    if problems:
        raise InventoryError("inventory: " + "; ".join(problems))
    return specs


@dataclass
class DryRunResult:
    device: str
    platform: str
    syntax_ok: bool
    syntax_errors: list[str]
    lines_to_delete: list[str]
    lines_to_add: list[str]
    output: str  # what the device printed, for the record
    candidate_digest: str = ""

    @property
    def changes(self) -> bool:
        return bool(self.lines_to_delete or self.lines_to_add)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ApplyResult:
    device: str
    platform: str
    applied: bool
    saved: bool
    lines_to_delete: list[str]
    lines_to_add: list[str]
    # Lines still differing between running config and candidate after the reload (should be empty).
    remaining_delta: list[str] = field(default_factory=list)
    output: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Connector(Protocol):
    """One device session. Use as a context manager; `close()` is always called."""

    spec: DeviceSpec

    def running_config(self) -> str: ...

    def dry_run(self, candidate: str) -> DryRunResult:
        """Load the candidate, show the delta against the running config, discard. Changes nothing."""
        ...

    def apply(self, candidate: str) -> ApplyResult:
        """Make the running config equal to the candidate and save it (live promotion)."""
        ...

    def state(self) -> dict[str, Any]:
        """Routing state in the twin's per-node snapshot shape (routes, bgp), for verification."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Connector: ...

    def __exit__(self, *exc: object) -> None: ...


class NetmikoSession:
    """The session lifecycle every netmiko connector shares: `open()` sets `_conn`;
    `close()` drops it (whatever the device says); usable as a context manager."""

    _conn: Any = None

    def open(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.disconnect()
            except Exception:  # noqa: BLE001, S110 - the session is being dropped either way
                pass
            finally:
                self._conn = None

    def __enter__(self) -> Self:
        return self.open() if self._conn is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()
