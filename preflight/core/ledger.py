"""The per-line ledger: what each change line actually did to the running config.

An exit status is not evidence. FRR accepts lines with status 0 that change nothing (a line
for a daemon the router does not run, `no …` of something absent, a statement already
present), changes them on the way in (`neighbor X timers 5 4` becomes `timers 1 4`: bgpd caps
the keepalive at a third of the hold time; host bits of a static route are masked off), or
refuses them in words while vtysh still exits 0 (`% Refusing to remove a non-existent route`).
In production the same line fails the same way, so the verdict must say so.

Input (plain data, from twin/frrdelta.py, i.e. frr-reload's own parser and delta): the change
text of one device as `(context, line)` items, the delta between the device's running config
before and after the apply, the block headers present after, the lines vtysh refused, and
what vtysh printed. Output: one ledger entry per change line:

    applied        the line is in the delta as written (FRR's normalised form)
    rejected       FRR refused it (vtysh's error, or a daemon's words with exit status 0)
    not_applied    nothing in the delta answers to it: the line had no effect
    reinterpreted  the delta holds a different line in its place (what FRR made of it: `became`)

plus the delta items no change line asked for (`unrequested`).
"""

from __future__ import annotations

import re
from typing import Any

Item = tuple[tuple[str, ...], str]
STATUSES = ("applied", "rejected", "not_applied", "reinterpreted")
# Daemon output that reports a problem even when vtysh exits 0.
_TROUBLE = re.compile(r"(?i)\b(error|unknown|invalid|already|refus\w*|fail\w*|not exist|does not exist|cannot|"
                      r"can't|incomplete|ambiguous|inconsistent|not found|no such|warning|malformed|"
                      r"please remove|not allowed|not supported)\b")
_LINE_PREFIX = re.compile(r"^line (\d+):\s*")
# vtysh's own chatter, never about a change line.
_NOISE = ("% Can't open configuration file", "Note: this version of vtysh never writes vtysh.conf",
          "Configuration file[")
_STRUCTURAL = frozenset({"exit", "end", "exit-address-family", "exit-vrf", "quit", "!"})


def _norm(text: str) -> str:
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return text.split()


def daemon_messages(output: str) -> list[dict[str, Any]]:
    """Lines of vtysh/daemon output that say error/unknown/invalid/already…, with their line number."""
    out: list[dict[str, Any]] = []
    for raw in output.splitlines():
        line = raw.strip()
        if not line or line.startswith(_NOISE):
            continue
        line_no = None
        m = _LINE_PREFIX.match(line)
        if m:
            line_no, line = int(m.group(1)), line[m.end():]
        if _TROUBLE.search(line) or line.startswith("%"):
            out.append({"line_no": line_no, "text": line})
    return out


def _shares_head(a: str, b: str) -> bool:
    """Two statements about the same thing (same command, same object), arguments aside."""
    ta, tb = _tokens(a), _tokens(b)
    common = 0
    for x, y in zip(ta, tb, strict=False):
        if x != y:
            break
        common += 1
    return common >= max(1, min(len(ta), len(tb)) - 2) and common >= 1 and ta[0] == tb[0]


def _match_items(change_text: str, items: list[Item]) -> list[tuple[int, str, Item | None]]:
    """Each meaningful change line (number, text) with its frr-reload item (context, statement)."""
    free = list(items)
    out: list[tuple[int, str, Item | None]] = []
    for no, raw in enumerate(change_text.splitlines(), 1):
        text = _norm(raw)
        if not text or text.startswith(("!", "#")) or text in _STRUCTURAL:
            continue
        hit = next((it for it in free if it[1] == text), None)
        if hit is None:  # frr-reload normalised it (e.g. a prefix-list's host bits)
            hit = next((it for it in free if _shares_head(it[1], text)), None)
        if hit is not None:
            free.remove(hit)
        out.append((no, text, hit))
    return out


def _under(ctx: tuple[str, ...], parent: tuple[str, ...]) -> bool:
    return ctx[: len(parent)] == parent


def line_ledger(node: str, change_text: str, items: list[Item], delta: dict[str, list[Item]],
                contexts_after: set[tuple[str, ...]], rejected: list[dict[str, Any]], output: str
                ) -> dict[str, Any]:
    """The ledger of one device: {"lines": [...], "unrequested": [...], "delta_empty": bool, "messages": [...]}."""
    added = [(tuple(c), s) for c, s in delta.get("added", [])]
    removed = [(tuple(c), s) for c, s in delta.get("removed", [])]
    claimed: set[tuple[str, Item]] = set()
    rej_by_no = {r["line_no"]: r for r in rejected if r.get("line_no")}
    rej_by_text = {_norm(r["line"]): r for r in rejected}
    messages = daemon_messages(output)
    rejected_texts = {_norm(r["line"]) for r in rejected}
    matched = _match_items(change_text, items)
    parents = {c for c, _ in items}  # blocks the change has statements in
    entries: list[dict[str, Any]] = []
    for no, text, item in matched:
        entry: dict[str, Any] = {"node": node, "line_no": no, "line": text, "status": "not_applied",
                                 "context": list(item[0]) if item else [], "frr_said": ""}
        entries.append(entry)
        refused = rej_by_no.get(no) or rej_by_text.get(text)
        if refused is not None:
            entry.update(status="rejected", frr_said=refused.get("message", ""))
            continue
        if item is None:
            continue
        ctx, stmt = item
        negated = stmt.startswith("no ")
        want = ("removed", (ctx, stmt[3:])) if negated else ("added", (ctx, stmt))
        pool = removed if negated else added
        if want[1] in pool and (want[0], want[1]) not in claimed:
            claimed.add(want)
            entry["status"] = "applied"
            if negated:  # `no neighbor X` takes every `neighbor X …` statement with it, also in sub-blocks
                for it in removed:
                    if _under(it[0], ctx) and it[1].startswith(stmt[3:] + " "):
                        claimed.add(("removed", it))
            else:  # a statement that replaces the old value of the same setting (description, router-id)
                for it in removed:
                    if it[0] == ctx and _shares_head(it[1], stmt) and ("removed", it) not in claimed:
                        claimed.add(("removed", it))
                        break
            continue
        if ctx + (stmt,) in parents and ctx + (stmt,) in contexts_after:
            # A block header the change enters (`router bgp 65003`): the block is there, and its
            # statements have entries of their own.
            entry.update(status="applied", block=True)
    # Second pass: a line with no exact counterpart whose place in the delta holds another line
    # about the same setting was reinterpreted by FRR.
    for entry in entries:
        if entry["status"] != "not_applied":
            continue
        ctx = tuple(entry["context"])
        stmt = entry["line"]
        negated = stmt.startswith("no ")
        pool, kind = (removed, "removed") if negated else (added, "added")
        target = stmt[3:] if negated else stmt
        for it in pool:
            if (kind, it) in claimed or it[0] != ctx or not _shares_head(it[1], target):
                continue
            claimed.add((kind, it))
            entry.update(status="reinterpreted", became=("no " if negated else "") + it[1])
            break
    # FRR's own words for lines that did nothing: numbered messages go to their line, the rest
    # (daemons print without a line number) to the lines that did not apply, in order.
    pending = [e for e in entries if e["status"] == "not_applied"]
    loose = []
    for msg in messages:
        target = next((e for e in entries if e["line_no"] == msg["line_no"]), None) if msg["line_no"] else None
        if target is not None and target["status"] in ("not_applied", "reinterpreted", "rejected"):
            if msg["text"] not in target["frr_said"]:
                target["frr_said"] = (target["frr_said"] + " " + msg["text"]).strip()
        elif msg["line_no"] is None and not any(msg["text"] in t for t in rejected_texts):
            loose.append(msg["text"])
    if loose and pending:
        if len(loose) == len(pending):
            for e, text in zip(pending, loose, strict=True):
                e["frr_said"] = text
        else:
            for e in pending:
                e["frr_said"] = " / ".join(loose)
    for e in pending:
        # A daemon that printed a refusal refused the line, whatever vtysh's exit status; "already"
        # means the line was a no-op, which is LINE_NOT_APPLIED with FRR's words.
        said = e["frr_said"]
        if said and _TROUBLE.search(said) and "already" not in said.lower():
            e["status"] = "rejected"
            e["detected"] = "daemon output (vtysh exit status 0)"
    unrequested = [{"node": node, "change": kind, "context": list(it[0]), "line": it[1]}
                   for kind, pool in (("added", added), ("removed", removed)) for it in pool
                   if (kind, it) not in claimed]
    return {"lines": entries, "unrequested": unrequested, "delta_empty": not added and not removed,
            "messages": [m["text"] for m in messages]}


def ledger_summary(ledgers: dict[str, dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for led in ledgers.values():
        for e in led["lines"]:
            counts[e["status"]] += 1
    return counts
