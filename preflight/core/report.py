"""CI outputs of one run: a JUnit XML report and a Markdown summary for a merge request.

Both are views of the result document (docs/result-format.md) and of the seal, nothing more:
one JUnit test case per check (static, each baseline and change invariant, each declared and
undeclared effect, the data plane, the rollback, resilience when the result has it), failures
carrying the reason; the Markdown a reviewer reads in the merge request (verdict, reasons,
effects table, rollback, the sealed bundle's digest and link). Daemon text never goes in:
only AEGIS's own messages, which name nodes, prefixes and codes.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from preflight.core.verdict import BLOCKING_CODES

Case = tuple[str, str, str | None, str]  # (classname, name, failure message or None, detail)
MAX_MD_ROWS = 50


def report_cases(result: dict[str, Any]) -> list[Case]:
    """Every check of the run as (classname, name, failure or None, detail), in pipeline order."""
    cases: list[Case] = []
    reasons = result.get("reasons") or []
    errors = [f for f in result.get("static_findings") or [] if f.get("severity") == "error"]
    static_msg = "; ".join(f"{f.get('device')}:{f.get('line_no') or '-'} {f.get('code')}: {f.get('message')}"
                           for f in errors)
    cases.append(("static", "static checks", static_msg or None,
                  f"{len(result.get('static_findings') or [])} finding(s)"))
    for kind, key in (("baseline_invariant", "baseline_invariants"), ("invariant", "invariants")):
        for inv in result.get(key) or []:
            spec = " ".join(f"{k}={v}" for k, v in (inv.get("spec") or {}).items())
            name = f"{inv.get('kind')} {spec}".strip()
            cases.append((kind, name, None if inv.get("ok") else str(inv.get("detail") or "violated"),
                          str(inv.get("detail") or "")))
    diff = result.get("diff") or {}
    for eff in diff.get("intended") or []:
        cases.append(("effect.declared", _effect_name(eff), None, str(eff.get("message", ""))))
    for msg in diff.get("expected_missing") or []:
        cases.append(("effect.declared", f"expected: {msg}", f"declared effect did not happen: {msg}", ""))
    for eff in diff.get("undeclared") or []:
        # An undeclared loss blocks; an undeclared gain only raises the risk (the verdict's reasons say).
        failure = f"undeclared effect: {eff.get('message')}" if eff.get("loss") else None
        cases.append(("effect.undeclared", _effect_name(eff), failure, str(eff.get("message", ""))))
    dp = result.get("dataplane")
    if isinstance(dp, dict) and not dp.get("skipped"):
        bad = [c for c in dp.get("changed") or [] if c.get("kind") in ("loop", "blackhole") and not c.get("declared")]
        cases.append(("dataplane", "forwarding before vs after",
                      "; ".join(str(c.get("text")) for c in bad) or None, f"{len(dp.get('changed') or [])} change(s)"))
    rb = result.get("rollback")
    if isinstance(rb, dict) and not rb.get("skipped"):
        failure = None if rb.get("verified") else (
            "rollback did not restore the baseline: " + "; ".join(str(m) for m in rb.get("mismatch") or [])
            or str(rb.get("status")))
        cases.append(("rollback", "rollback restores the baseline", failure, str(rb.get("status") or "")))
    res = result.get("resilience")
    if isinstance(res, dict):
        for sc in res.get("scenarios") or []:
            # The shape of core/resilience.py: a loss fails the case unless the change declared it.
            lost = list(sc.get("lost") or [])
            failure = (f"lost under {sc.get('name')}: " + "; ".join(str(i) for i in lost[:5])
                       + (f"; and {len(lost) - 5} more" if len(lost) > 5 else "")) if lost and not sc.get("declared") else None
            cases.append(("resilience", str(sc.get("name")), failure,
                          f"{len(lost)} lost, {len(sc.get('gained') or [])} gained"
                          + (" (declared in expect.redundancy_removed)" if sc.get("declared") else "")))
    for r in reasons:  # blocking reasons no case above already carries (twin did not settle, step failed, …)
        if r["code"] in BLOCKING_CODES and not any(c[2] and r["message"] in c[2] for c in cases):
            cases.append(("verdict", r["code"], r["message"], ""))
    return cases


def _effect_name(eff: dict[str, Any]) -> str:
    return f"{eff.get('kind')} {eff.get('node')} {eff.get('key')}".strip()


def junit_xml(result: dict[str, Any], *, seal: dict[str, Any] | None = None) -> str:
    """JUnit XML (one testsuite named for the lab and run, one testcase per check)."""
    cases = report_cases(result)
    failures = sum(1 for c in cases if c[2])
    suite = ET.Element("testsuite", {
        "name": f"aegis preflight {result.get('lab', {}).get('name', '')} {result.get('run_id', '')}".strip(),
        "tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0",
        "timestamp": str(result.get("started_at") or ""),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("verdict", result.get("verdict")), ("run_id", result.get("run_id")),
                        ("bundle_digest", (seal or {}).get("digest")), ("twin_tier", (result.get("twin") or {})
                                                                          .get("tier"))):
        if value:
            ET.SubElement(props, "property", {"name": name, "value": str(value)})
    for classname, name, failure, detail in cases:
        tc = ET.SubElement(suite, "testcase", {"classname": f"aegis.{classname}", "name": name, "time": "0"})
        if failure:
            ET.SubElement(tc, "failure", {"message": failure[:1000], "type": classname}).text = failure
        elif detail:
            ET.SubElement(tc, "system-out").text = detail
    suites = ET.Element("testsuites", {"tests": str(len(cases)), "failures": str(failures)})
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _md(text: Any) -> str:
    """One table cell: no pipes or newlines that would break the table, no HTML."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def markdown_summary(result: dict[str, Any], *, seal: dict[str, Any] | None = None,
                     bundle_url: str | None = None) -> str:
    """The merge-request summary: verdict, reasons, effects table, rollback, sealed bundle."""
    icon = {"ship_ready": "✅", "needs_approval": "🟡", "blocked": "⛔"}.get(result.get("verdict", ""), "")
    risk = result.get("risk") or {}
    change = result.get("change") or {}
    out = [f"## AEGIS preflight: {icon} `{result.get('verdict')}`", ""]
    out.append(f"**{_md(change.get('title', ''))}** on lab `{(result.get('lab') or {}).get('name', '')}` — "
               f"run `{result.get('run_id')}`, twin `{(result.get('twin') or {}).get('tier', '?')}`"
               + (f", risk {risk.get('tier')} (score {risk.get('score')})" if risk else ""))
    desired = change.get("desired")
    if desired:
        out.append(f"\nDesired state ({_md(desired.get('origin') or 'files')}): "
                   f"{', '.join(desired.get('nodes', {}))} changed"
                   + (f"; unchanged: {', '.join(desired['unchanged'])}" if desired.get("unchanged") else ""))
    out += ["", "### Reasons", ""]
    out += [f"- `{r['code']}` {_md(r['message'])}" for r in result.get("reasons") or []]
    diff = result.get("diff") or {}
    effects = [("intended", e) for e in diff.get("intended") or []] + \
              [("undeclared", e) for e in diff.get("undeclared") or []]
    out += ["", "### Effects", ""]
    if effects:
        out += ["| | kind | node | what | loss |", "|---|---|---|---|---|"]
        for tag, e in effects[:MAX_MD_ROWS]:
            out.append(f"| {tag} | {_md(e.get('kind'))} | {_md(e.get('node'))} | {_md(e.get('message'))} | "
                       f"{'yes' if e.get('loss') else ''} |")
        if len(effects) > MAX_MD_ROWS:
            out.append(f"\n… and {len(effects) - MAX_MD_ROWS} more (see the bundle)")
    else:
        out.append("No routing effect observed." if result.get("diff") is not None else "No twin ran.")
    cases = report_cases(result)
    failed = [c for c in cases if c[2]]
    out += ["", f"### Checks: {len(cases) - len(failed)} of {len(cases)} passed", ""]
    out += [f"- ❌ {_md(c[0])}: {_md(c[1])} — {_md(c[2])}" for c in failed[:MAX_MD_ROWS]]
    rb = result.get("rollback") or {}
    out += ["", "### Rollback", ""]
    if rb.get("lines"):
        out.append(f"{'verified' if rb.get('verified') else '**NOT verified**'} ({rb.get('status', '')})")
        out.append("\n```")
        out += [f"{node}: {ln}" for node, lines in rb["lines"].items() for ln in lines]
        out.append("```")
    else:
        out.append("no rollback ran")
    out += ["", "### Evidence", ""]
    if seal and seal.get("digest"):
        where = f"[bundle]({bundle_url})" if bundle_url else f"`{seal.get('bundle_path', 'bundle.json')}`"
        out.append(f"sealed `{seal['digest']}` (ledger index {seal.get('ledger_index')}), {where}")
    else:
        out.append("**not sealed**" + (f": {_md(seal.get('error'))}" if seal and seal.get("error") else ""))
    return "\n".join(out) + "\n"


def input_error_reports(message: str, *, lab: str = "") -> tuple[str, str]:
    """(JUnit XML, Markdown) for a run refused before anything spawned (exit 2): CI still shows why."""
    suites = ET.Element("testsuites", {"tests": "1", "failures": "1"})
    suite = ET.SubElement(suites, "testsuite", {"name": f"aegis preflight {lab}".strip(), "tests": "1",
                                                "failures": "1", "errors": "0", "skipped": "0"})
    tc = ET.SubElement(suite, "testcase", {"classname": "aegis.input", "name": "input accepted", "time": "0"})
    ET.SubElement(tc, "failure", {"message": message[:1000], "type": "input"}).text = message
    ET.indent(suites)
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    md = f"## AEGIS preflight: ⛔ input refused\n\nLab `{_md(lab)}`: {_md(message)}\n\nNothing was spawned or sealed.\n"
    return xml, md
