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
