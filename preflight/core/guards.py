"""Guards: refuse unsafe input before anything runs.

The change text is untrusted (it may come from an LLM). It is entered into vtysh in
configuration mode inside the twin, so a line must not be able to reach outside the
routing configuration: no shell (`start-shell`), no exec-mode commands (`do …`, `write`,
`copy`, `clear`, …), nothing that writes host files or opens connections (`log file`,
`dump bgp`, `rpki`, `bmp`, `fpm`), no terminal/password/service settings, no control
characters, and no line that leaves configuration mode to smuggle an exec command after it.

Two independent defences, because FRR's node tree cannot be modelled exactly here:
1. a denylist of first words that are exec-mode or host-reaching, checked on every line;
2. a context tracker: `end`/`quit` are refused, and an `exit` that would leave the
   configuration node is refused. Commands known to live only at the top of the config
   reset the tracker, so it errs towards refusing.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from preflight.core.change import (
    MAX_DEVICE_BYTES,
    MAX_DEVICE_LINES,
    MAX_LINE_CHARS,
    ChangeError,
    _device_check,
)
from twin.base import Topology


class GuardRejection(ValueError):
    """Unsafe input, refused before anything spawned. Names the device and line."""

    def __init__(self, message: str, *, device: str | None = None, line_no: int | None = None,
                 line: str | None = None) -> None:
        self.device = device
        self.line_no = line_no
        self.line = line
        where = ""
        if device is not None:
            where = f"device {device}"
            if line_no is not None:
                where += f", line {line_no}"
            where += ": "
        quoted = f" (line: {line!r})" if line is not None else ""
        super().__init__(f"{where}{message}{quoted}")
        self.reason = message


# First words (lowercase) never allowed in a change: exec-mode commands, shells, files.
DENIED_FIRST_WORDS: dict[str, str] = {
    "start-shell": "opens a shell on the host",
    "do": "runs an exec-mode command from configuration mode",
    "write": "writes configuration files",
    "copy": "copies files",
    "clear": "is an exec-mode command",
    "show": "is an exec-mode command",
    "configure": "re-enters configuration mode (exec-mode command)",
    "enable": "changes the privilege level",
    "disable": "changes the privilege level",
    "terminal": "changes terminal settings",
    "ping": "is an exec-mode command",
    "traceroute": "is an exec-mode command",
    "mtrace": "is an exec-mode command",
    "ssh": "opens a connection",
    "telnet": "opens a connection",
    "watchfrr": "controls the daemons",
    "logmsg": "writes to the host logs",
    "echo": "is an exec-mode command",
    "find": "is an exec-mode command",
    "list": "is an exec-mode command",
    "exit-vtysh": "leaves vtysh",
    "line": "configures the management terminal (line vty)",
    "password": "sets a management password",
    "username": "creates a management user",
    "service": "changes vtysh/daemon service settings",
    "banner": "can read host files",
    "dump": "writes files on the host",
    "rpki": "opens connections to RPKI caches",
    "bmp": "opens connections to BMP collectors",
    "fpm": "opens a connection to an FPM server",
    "agentx": "talks to the host's SNMP agent",
    "sharp": "is a test daemon command",
    "end": "leaves configuration mode (a following line would run as an exec command)",
    "quit": "leaves configuration mode",
}
DENIED_PHRASES: dict[tuple[str, ...], str] = {
    ("log", "file"): "writes a log file on the host",
    ("log", "syslog"): "writes to the host's syslog",
    ("no", "log", "file"): "changes host log files",
    ("enable", "password"): "sets a management password",
    ("no", "service"): "changes vtysh/daemon service settings",
    ("no", "password"): "changes a management password",
    ("no", "line"): "configures the management terminal",
    ("no", "banner"): "changes the banner",
    ("no", "dump"): "changes host file dumps",
    ("no", "rpki"): "changes RPKI connections",
    ("no", "bmp"): "changes BMP connections",
    ("no", "fpm"): "changes the FPM connection",
}
# Lines that enter a sub-node of the configuration (the tracker pushes a level).
ENTER_PATTERNS = [
    re.compile(p)
    for p in (
        r"^router\s+\S+",
        r"^interface\s+\S+",
        r"^route-map\s+\S+\s+(permit|deny)\s+\d+",
        r"^address-family\s+\S+",
        r"^vrf\s+\S+",
        r"^vni\s+\d+",
        r"^key\s+chain\s+\S+",
        r"^key\s+\d+",
        r"^bfd$",
        r"^peer\s+\S+",
        r"^profile\s+\S+",
        r"^segment-routing$",
        r"^traffic-eng$",
        r"^mpls\s+ldp$",
        r"^nexthop-group\s+\S+",
        r"^pbr-map\s+\S+",
        r"^affinity-map$",
        r"^srv6$",
        r"^locators$",
        r"^locator\s+\S+",
        r"^rpki$",
        r"^ldp$",
    )
]
# Commands that exist only at the top of the configuration: vtysh moves back up to the
# configuration node to run them, so the tracker resets to the top as well.
TOP_ONLY_PATTERNS = [
    re.compile(p)
    for p in (
        r"^(no\s+)?ip\s+route\s",
        r"^(no\s+)?ipv6\s+route\s",
        r"^(no\s+)?ip(v6)?\s+prefix-list\s",
        r"^(no\s+)?bgp\s+(community-list|large-community-list|extcommunity-list|as-path)\s",
        r"^(no\s+)?(ipv6\s+)?access-list\s",
        r"^(no\s+)?router\s",
        r"^(no\s+)?interface\s",
        r"^(no\s+)?route-map\s",
        r"^(no\s+)?hostname\b",
        r"^(no\s+)?frr\s",
        r"^(no\s+)?key\s+chain\s",
        r"^(no\s+)?ip\s+(forwarding|nht|protocol|import-table)\b",
        r"^(no\s+)?ipv6\s+(forwarding|nht|protocol)\b",
        r"^(no\s+)?debug\s",
        r"^(no\s+)?log\s",
    )
]
# `|` pipes output in vtysh; it is only legitimate inside a BGP regex list.
PIPE_OK = re.compile(r"^(no\s+)?(bgp\s+(as-path\s+access-list|community-list|large-community-list|"
                     r"extcommunity-list)|ip\s+as-path)\s")
SCRIPT_WORD = re.compile(r"(^|\s)(script|lua)(\s|$)")


def precheck(change: dict[str, Any], topology: Topology) -> None:
    """Refuse a change that names devices outside the lab or carries unsafe lines."""
    devices = change.get("devices")
    if not isinstance(devices, dict) or not devices:
        raise GuardRejection("the change names no device")
    for device, text in devices.items():
        try:
            _device_check(device, topology)
        except ChangeError as exc:
            raise GuardRejection(str(exc), device=device) from None
        if not isinstance(text, str):
            raise GuardRejection("config must be text", device=device)
        if len(text.encode("utf-8", "replace")) > MAX_DEVICE_BYTES:
            raise GuardRejection(f"more than {MAX_DEVICE_BYTES // 1024} KiB of config", device=device)
        lines = text.split("\n")
        if len(lines) > MAX_DEVICE_LINES + 1:
            raise GuardRejection(f"more than {MAX_DEVICE_LINES} lines", device=device)
        device_lines_check(device, lines)


def device_lines_check(device: str, lines: list[str]) -> None:
    """Check one device's lines in order (the context tracker needs the order)."""
    depth = 0
    for line_no, raw in enumerate(lines, start=1):
        reason = _control_chars(raw) or _non_ascii(raw)
        if reason:
            raise GuardRejection(reason, device=device, line_no=line_no, line=raw)
        if len(raw) > MAX_LINE_CHARS:
            raise GuardRejection(f"line longer than {MAX_LINE_CHARS} characters", device=device,
                                 line_no=line_no, line=raw[:80] + "…")
        stripped = raw.strip()
        if not stripped or stripped.startswith(("!", "#")):
            continue
        words = stripped.lower().split()
        reason = _denied(words, stripped)
        if reason:
            raise GuardRejection(reason, device=device, line_no=line_no, line=raw)
        text = " ".join(words)
        if words[0] in ("exit", "exit-address-family", "exit-vrf", "exit-vnc", "exit-ldp-if",
                        "exit-af", "exit-traffic-eng", "exit-srv6", "exit-sr-policy") :
            if len(words) > 1:
                raise GuardRejection(f"`{words[0]}` takes no arguments", device=device, line_no=line_no, line=raw)
            if depth == 0:
                raise GuardRejection(
                    "leaves configuration mode (nothing to exit here; a following line would run as an "
                    "exec command)", device=device, line_no=line_no, line=raw)
            depth -= 1
            continue
        if any(p.match(text) for p in TOP_ONLY_PATTERNS):
            depth = 0
        if not text.startswith("no ") and any(p.match(text) for p in ENTER_PATTERNS):
            depth += 1


def _control_chars(line: str) -> str | None:
    for ch in line:
        if ch == "\t":
            continue
        cat = unicodedata.category(ch)
        # Cc: C0/C1 controls (incl. CR, ESC, NUL); Cf: invisible format characters such as
        # bidi overrides that make a line read differently from what vtysh executes.
        if cat in ("Cc", "Cf") or ch in ("\u2028", "\u2029"):
            return f"control character U+{ord(ch):04X} is not allowed in config lines"
    return None


# FRR's CLI accepts any unambiguous prefix of a keyword (`wr mem`, `conf t`, `log fi`), so the
# denylist must match abbreviations too. These real configuration keywords happen to be prefixes of
# denied words (`log` of `logmsg`, `exit` of `exit-vtysh`) and stay allowed as whole words.
ALLOWED_PREFIX_WORDS = frozenset({"log", "exit", "no"})


def _abbreviates(word: str, keyword: str) -> bool:
    return keyword.startswith(word) and word not in ALLOWED_PREFIX_WORDS


def _non_ascii(line: str) -> str | None:
    """FRR commands are ASCII: a non-ASCII letter in a command word is a look-alike (Cyrillic `ѕ`,
    fullwidth `ｄｏ`, a no-break space) that reads as one command and may parse as another. Free text
    after `description` or `remark` may be in any script."""
    for index, ch in enumerate(line):
        if ord(ch) > 127:
            before = line[:index].lower().split()
            if "description" in before or "remark" in before:
                return None
            return (f"non-ASCII character U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')}) in a command; "
                    "FRR commands are ASCII (look-alike letters are refused; free text belongs after "
                    "`description`)")
    return None


def _denied(words: list[str], stripped: str) -> str | None:
    first = words[0]
    for phrase, why in DENIED_PHRASES.items():
        if tuple(words[: len(phrase)]) == phrase:
            return f"`{' '.join(phrase)}` is not allowed: it {why}"
    if first in DENIED_FIRST_WORDS:
        return f"`{first}` is not allowed in a change: it {DENIED_FIRST_WORDS[first]}"
    if first == "no" and len(words) > 1 and words[1] in DENIED_FIRST_WORDS:
        return f"`no {words[1]}` is not allowed in a change: it {DENIED_FIRST_WORDS[words[1]]}"
    for phrase, why in DENIED_PHRASES.items():
        if len(words) >= len(phrase) and all(_abbreviates(w, p) or w == p for w, p in zip(words[:len(phrase)], phrase, strict=True)):
            return f"`{' '.join(words[:len(phrase)])}` is an abbreviation of `{' '.join(phrase)}`, which {why}"
    for word in (first, words[1] if first == "no" and len(words) > 1 else ""):
        hits = sorted(k for k in DENIED_FIRST_WORDS if word and _abbreviates(word, k))
        if hits:
            return (f"`{word}` is an abbreviation of `{'`/`'.join(hits)}`, which is not allowed in a change "
                    f"({DENIED_FIRST_WORDS[hits[0]]})")
    if "|" in stripped and not PIPE_OK.match(" ".join(words)):
        return "`|` (output pipe) is only allowed in BGP as-path/community regex lists"
    if SCRIPT_WORD.search(" ".join(words)):
        return "scripts (Lua hooks) are not allowed in a change"
    return None
