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
    Every value is escaped by format_html."""
    from django.utils import timezone
    from django.utils.dateformat import format as date_format
    from django.utils.html import format_html, format_html_join
    from django.utils.safestring import mark_safe
    from django.utils.timesince import timesince

    def cells(r: dict[str, Any]) -> tuple[Any, ...]:
        blast = r["blast"] or {}
        simulated = mark_safe(' · <span class="badge simulated">simulated</span>') if r["backend"] == "simulator" else ""
        action = (
            mark_safe('<span class="muted small">you decided</span>')
            if r["already_decided"]
            else format_html('<a class="button secondary" href="{}">Review</a>', r["decide_url"])
        )
        return (
            date_format(timezone.localtime(r["created"]), "Y-m-d H:i"),
            timesince(r["created"]),
            r["decide_url"],
            r["change__title"],
            r["change__lab__name"],
            r["run_id"],
            simulated,
            r["change__operator__username"],
            r["risk_tier"],
            r["risk_tier"] or "?",
            "" if r["risk_score"] is None else r["risk_score"],
            ", ".join(
                (
                    _plural(blast.get("devices", ""), "device"),
                    _plural(blast.get("routes", ""), "route change"),
                    _plural(blast.get("sessions", ""), "session change"),
                )
            ),
            r["approved_count"],
            r["required"],
            action,
        )

    return format_html_join(
        "\n",
        '<tr>\n  <td class="small">{}<div class="muted">{} ago</div></td>\n'
        '  <td><a href="{}">{}</a><div class="muted small">{} · <span class="mono">{}</span>{}</div></td>\n'
        "  <td>{}</td>\n"
        '  <td><span class="badge {}">{}</span> <span class="small muted">{}</span></td>\n'
        '  <td class="small">{}</td>\n'
        "  <td>{} / {}</td>\n"
        "  <td>{}</td>\n</tr>",
        (cells(r) for r in rows),
    )
