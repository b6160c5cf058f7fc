"""`{% promotion_panel run_id %}`: a run's promotion attempts and, for who may, the dry-run button.

One tag shared by the run page, the decision page and the auditor's bundle detail, so those
views need no promotion code of their own.
"""

from __future__ import annotations

from typing import Any

from django import template

from aegis_base.core.policy import promote_refusal
from aegis_base.selectors import actor_of
from evidence.models import Bundle
from preflight.models import PreflightRun
from preflight.selectors import run_approval_state

register = template.Library()


@register.inclusion_tag("promote/_promotions.html", takes_context=True)
def promotion_panel(context: dict[str, Any], run_id: str) -> dict[str, Any]:
    from promote.selectors import promotions_for_run

    request = context.get("request")
    user = getattr(request, "user", None)
    bundle = Bundle.objects.filter(run_id=run_id).defer("bundle_json").first() if run_id else None
    actor = actor_of(user)
    refusal = (
        promote_refusal(
            username=actor.username if actor.is_authenticated else "",
            roles=actor.groups,
            is_superuser=actor.is_superuser,
            bundle_operator=bundle.operator_username,
        )
        if bundle is not None
        else "no sealed bundle"
    )
    # The button is a courtesy for bundles the gate can pass; the gate decides either way.
    promotable = (
        bundle is not None and bundle.tier == "real" and bundle.verdict in ("ship_ready", "needs_approval")
    )
    waiting = ""
    if promotable and bundle.verdict == "needs_approval":
        run = PreflightRun.objects.filter(run_id=run_id).select_related("change__operator").first()
        state = run_approval_state(run) if run is not None else "pending"
        if state != "approved":
            waiting = state  # pending | rejected
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "bundle": bundle,
        "promotions": promotions_for_run(run_id) if bundle is not None else [],
        "can_promote": promotable and not waiting and refusal is None,
        "waiting": waiting,
        "not_promotable": bundle is not None and not promotable,
    }


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@register.simple_tag
def queue_rows(rows: list[dict[str, Any]]) -> str:
    """The approver queue's table rows, built in Python: the queue is the busiest page, and the
    template language cost about a quarter of a millisecond of CPU per row (docs/performance.md).
    Every value from a row is escaped (`html.escape`, what Django's `escape` calls); dates by
    `strftime`, one clock read for the page: `format_html` and Django's date filter cost another
    ~40 us a row."""
    from html import escape

    from django.utils import timezone
    from django.utils.safestring import mark_safe
    from django.utils.timesince import timesince

    now = timezone.now()
    out = []
    for r in rows:
        blast = r["blast"] or {}
        created = r["created"]
        url = escape(r["decide_url"])
        blast_text = ", ".join(
            (
                _plural(blast.get("devices", ""), "device"),
                _plural(blast.get("routes", ""), "route change"),
                _plural(blast.get("sessions", ""), "session change"),
            )
        )
        action = (
            '<span class="muted small">you decided</span>'
            if r["already_decided"]
            else f'<a class="button secondary" href="{url}">Review</a>'
        )
        risk = escape(r["risk_tier"] or "")
        simulated = ' · <span class="badge simulated">simulated</span>' if r["backend"] == "simulator" else ""
        score = "" if r["risk_score"] is None else escape(str(r["risk_score"]))
        out.append(
            f'<tr>\n  <td class="small">{timezone.localtime(created).strftime("%Y-%m-%d %H:%M")}'
            f'<div class="muted">{escape(timesince(created, now))} ago</div></td>\n'
            f'  <td><a href="{url}">{escape(r["change__title"])}</a><div class="muted small">'
            f'{escape(r["change__lab__name"])} · <span class="mono">{escape(r["run_id"])}</span>'
            f"{simulated}</div></td>\n"
            f"  <td>{escape(r['change__operator__username'])}</td>\n"
            f'  <td><span class="badge {risk}">{risk or "?"}</span> <span class="small muted">'
            f"{score}</span></td>\n"
            f'  <td class="small">{escape(blast_text)}</td>\n'
            f"  <td>{escape(str(r['approved_count']))} / {escape(str(r['required']))}</td>\n"
            f"  <td>{action}</td>\n</tr>"
        )
    return mark_safe("\n".join(out))  # noqa: S308 - every value above is escaped
