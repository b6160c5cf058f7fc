"""Turn what `vtysh -b` / `vtysh -f` printed into refused lines and harmless warnings.

The rule (documented in docs/twin.md, classes from ../shared/corpus/README.md):

* a **refused line** is a config line FRR did not take: vtysh's own parse errors
  (`line N: % Unknown command[..]: TEXT`, `% Command incomplete`, `% Ambiguous command`, ...)
  and lines a running daemon refused (`Failure to communicate[13] to ospfd, line: TEXT`, with
  the daemon's explanation printed just before it, e.g. `Please remove all ip ospf area ...`);
* a **warning** is everything FRR printed that did not lose a line:
  - `The route-map 'X' does not exist.` - a forward reference; bgpd links the map once it is
    defined further down (we say so louder when X is never defined in the file);
  - `can't open logfile X` / `Failure to communicate ... line: log file X` with a relative X -
    the daemons (user frr) cannot open a log path relative to their working folder;
  - deprecation notices (`This command is deprecated ...`, `Please, use ...`) and notes such as
    `Graceful restart configuration changed ...` or `% Echo mode works correctly ...`.
"""

from __future__ import annotations

import re

from .base import RejectedLine

_LINE_PREFIX = re.compile(r"^line (\d+):\s?(.*)$")
_PARSE_ERROR = re.compile(r"^(% (?:Unknown command|Command incomplete|Ambiguous command|Invalid [^\[:]*|"
                          r"Wrong [^\[:]*|[^\[:]*?))(?:\[\d+\])?: (.*)$")
_DAEMON_REFUSED = re.compile(r"^Failure to communicate\[\d+\] to (\S+), line: (.*)$")
_ROUTE_MAP_MISSING = re.compile(r"^The route-map '([^']+)' does not exist\.$")
_NOISE = (
    "% Can't open configuration file",  # vtysh -N looking for its own vtysh.conf
    "Note: this version of vtysh never writes vtysh.conf",
    "Configuration file[",  # vtysh's summary ("... processing failure: 2") of the lines listed above
)


def _find_line_no(config: str, text: str) -> int | None:
    want = text.strip()
    for i, line in enumerate(config.splitlines(), 1):
        if line.strip() == want:
            return i
    return None


def classify_vtysh_output(node: str, output: str, config: str) -> tuple[list[RejectedLine], list[str]]:
    """(refused lines, warnings) from vtysh's output while loading `config` into `node`."""
    rejected: list[RejectedLine] = []
    warnings: list[str] = []
    pending: list[str] = []  # daemon explanations printed before the line they refer to

    def flush_pending() -> None:
        for msg in pending:
            warnings.append(f"{node}: {msg}")
        pending.clear()

    for raw in output.splitlines():
        line = raw.rstrip()
        if not line.strip() or any(line.startswith(n) for n in _NOISE):
            continue
        line_no = None
        m = _LINE_PREFIX.match(line)
        if m:
            line_no, line = int(m.group(1)), m.group(2)
        m = _DAEMON_REFUSED.match(line)
        if m:
            daemon, text = m.group(1), m.group(2)
            if text.strip().startswith("log file ") and not text.strip()[len("log file "):].startswith("/"):
                pending.clear()
                warnings.append(f"{node}: relative log file ignored ({text.strip()}): the daemons cannot "
                                "open it; FRR logs to its default target instead")
                continue
            message = " ".join(pending) if pending else f"refused by {daemon}"
            pending.clear()
            rejected.append(RejectedLine(node=node, line=text.strip(), message=message,
                                         line_no=line_no or _find_line_no(config, text)))
            continue
        m = _PARSE_ERROR.match(line)
        if m and not line.startswith("% Echo mode"):
            flush_pending()
            text = m.group(2)
            rejected.append(RejectedLine(node=node, line=text.strip(), message=m.group(1),
                                         line_no=line_no or _find_line_no(config, text)))
            continue
        m = _ROUTE_MAP_MISSING.match(line)
        if m:
            name = m.group(1)
            if re.search(rf"^route-map {re.escape(name)} ", config, re.M):
                warnings.append(f"{node}: route-map {name} referenced before it is defined (harmless: "
                                "bgpd links it once the definition is read)")
            else:
                warnings.append(f"{node}: route-map {name} is referenced but never defined in the config")
            continue
        if line.startswith("can't open logfile"):
            continue  # reported with its `log file` line
        pending.append(line.strip())
    flush_pending()
    return rejected, warnings
