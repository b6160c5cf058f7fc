"""Drift check: is the device still running the config the twin's baseline was built from?

The twin's evidence only speaks for the network it simulated. If someone changed a router
after the twin ran, the verdict is stale, so promotion (dry-run or live) is refused. The
check compares a digest of the device's running config with a digest of the baseline the
twin used, after normalising both the same way.

What the normaliser ignores, and why (nothing else is ignored):

- `Building configuration...`, `Current configuration:` and a trailing `end`: framing that
  `show running-config` prints around the config; they are not configuration.
- lines that are only `!` and blank lines: separators FRR prints between blocks; whether
  they are there or not changes nothing on the router.
- `frr version X.Y.Z`: FRR rewrites it with the installed version on every save, so a
  package update would look like drift although no configuration changed. (A version skew
  between twin and device is a different question and is recorded by the twin.)
- trailing whitespace and CRLF line ends: transport artefacts of an SSH session.

When the digests differ, `drift_settle_by_delta` lets FRR itself decide (see there): a
hand-written lab config differs in form from what the router prints without being drift.

Kept on purpose: `frr defaults` (it changes timers and policies), `hostname`, passwords and
every routing line, in the order the device prints them (order is meaningful for route-maps
and access lists).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from aegis_base.core.files import sha256_digest

# Lines dropped by the normaliser; the module docstring says why for each one.
IGNORED_LINES = (
    re.compile(r"^Building configuration\.\.\.$"),
    re.compile(r"^Current configuration:?$"),
    re.compile(r"^!\s*$"),
    re.compile(r"^frr version \S+$"),
    re.compile(r"^end$"),
)


def config_normalize(text: str) -> str:
    """The config text with framing, separators and the `frr version` line removed."""
    kept = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        if not line.strip():
            continue
        if any(p.match(line) for p in IGNORED_LINES):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def config_digest(text: str) -> str:
    """`sha256:<hex>` of the normalised config: what a baseline records and drift compares."""
    return sha256_digest(config_normalize(text))


@dataclass
class DriftResult:
    device: str
    ok: bool
    running_digest: str
    baseline_digest: str
    # A short unified diff baseline -> running (only with a baseline text), for the operator.
    diff: list[str] = field(default_factory=list)
    reason: str = ""
    # "digest": the normalised texts are identical. "frr-reload": the texts differ in form only;
    # FRR's own frr-reload.py, run on the device against the baseline, finds nothing to change.
    method: str = "digest"

    def as_dict(self) -> dict[str, object]:
        return {
            "device": self.device,
            "ok": self.ok,
            "method": self.method,
            "running_digest": self.running_digest,
            "baseline_digest": self.baseline_digest,
            "diff": self.diff,
            "reason": self.reason,
        }


def drift_check(
    device: str,
    running: str,
    *,
    baseline_text: str | None = None,
    baseline_digest: str | None = None,
    diff_lines: int = 40,
) -> DriftResult:
    """Compare a device's running config with the twin's baseline (text, or its `config_digest`)."""
    if baseline_text is None and baseline_digest is None:
        raise ValueError(f"{device}: no baseline to compare with (give baseline_text or baseline_digest)")
    running_digest = config_digest(running)
    want = config_digest(baseline_text) if baseline_text is not None else str(baseline_digest)
    if running_digest == want:
        return DriftResult(device, True, running_digest, want)
    diff: list[str] = []
    if baseline_text is not None:
        diff = [
            line
            for line in difflib.unified_diff(
                config_normalize(baseline_text).splitlines(),
                config_normalize(running).splitlines(),
                "baseline (twin)",
                f"running ({device})",
                lineterm="",
                n=1,
            )
        ][:diff_lines]
    return DriftResult(
        device,
        False,
        running_digest,
        want,
        diff,
        reason=(
            f"{device}: running config {running_digest[:19]}… differs from the baseline the twin used "
            f"{want[:19]}…; the evidence is stale, preflight the change again against the current config"
        ),
    )


def drift_settle_by_delta(
    first: DriftResult, lines_to_delete: list[str], lines_to_add: list[str]
) -> DriftResult:
    """Decide a digest mismatch with FRR's own comparison of the device against the baseline.

    A lab written by hand (comments, no `exit` lines, another order of blocks) never has the
    digest of what the router prints, although the router runs exactly that configuration.
    `frr-reload.py --test <baseline>` on the device says what it would change to reach the
    baseline: nothing means no drift. Otherwise its delta is the drift, stated as what the
    device has that the twin did not (would be deleted) and what it lacks (would be added).
    """
    if first.ok:
        return first
    if not lines_to_delete and not lines_to_add:
        return DriftResult(
            first.device, True, first.running_digest, first.baseline_digest, method="frr-reload"
        )
    # frr-reload's own words: its deletions are already negated ("no ip route ..."), in context.
    diff = (
        ["frr-reload would delete (only on the device):"]
        + lines_to_delete
        + ["frr-reload would add (only in the baseline):"]
        + lines_to_add
    )
    return DriftResult(
        first.device,
        False,
        first.running_digest,
        first.baseline_digest,
        diff[:40],
        reason=(
            f"{first.device}: running config differs from the baseline the twin used "
            f"(frr-reload finds {len(lines_to_delete)} line(s) only on the device, {len(lines_to_add)} only in "
            "the baseline); the evidence is stale, preflight the change again against the current config"
        ),
        method="frr-reload",
    )
