"""Approver pages: the sign-off queue and the decision page. Thin: authorize, call a service."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from aegis_base.core import policy
from preflight import selectors
from promote import selectors as promote_selectors
from promote import services

QUEUE_PAGE = 25


def _require_approver(request: HttpRequest) -> None:
    if not selectors.actor_of(request.user).has_role(policy.APPROVER):
        raise PermissionDenied("Only members of the approver group see the sign-off queue.")


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    """Runs that need a decision from this approver, oldest first, with risk and blast radius."""
    _require_approver(request)
    # Oldest first, one screen at a time: the next ones move up as these are decided.
    waiting, total = selectors.approval_queue_page(request.user, QUEUE_PAGE)
    # One reverse() for the page, not one per row (run ids are [0-9a-f-]).
    decide = reverse("promote:decide", args=["RUN-ID"])
    for row in waiting:
        row["decide_url"] = decide.replace("RUN-ID", row["run_id"])
    return render(
        request,
        "promote/queue.html",
        {
            "queue": waiting,
            "more": max(0, total - len(waiting)),
            "total": total,
            "mine": promote_selectors.approvals_by_user(request.user, limit=10),
            "nav": "queue",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def decide(request: HttpRequest, run_id: str) -> HttpResponse:
    """The run's diff, rollback and findings, and the approve/reject form."""
    _require_approver(request)
    run = selectors.access_run(request.user, run_id)
    errors: dict[str, str] = {}
    comment = ""
    if request.method == "POST":
        decision = request.POST.get("decision", "")
        comment = request.POST.get("comment", "")
        try:
            services.approval_decide(run=run, approver=request.user, decision=decision, comment=comment)
        except services.DecisionInvalid as exc:
            errors[exc.field] = str(exc)
        except services.DecisionRefused as exc:
            errors["general"] = str(exc)
        else:
            messages.success(request, f"Your decision on {run.run_id} is recorded: {decision}.")
            return redirect("promote:queue")
    approvals = promote_selectors.approvals_for_run(run)
    facts = selectors.run_facts(run, approvals)
    refusal = policy.decide_refusal(
        selectors.actor_of(request.user), facts, high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS
    )
    result = run.result or {}
    return render(
        request,
        "promote/decide.html",
        {
            "run": run,
            "change": run.change,
            "result": result,
            "blast": selectors.blast_radius(result),
            "diff_nodes": sorted(((result.get("diff") or {}).get("nodes") or {}).items()),
            "approvals": approvals,
            "approval_state": selectors.run_approval_state(run, facts),
            "refusal": refusal,
            "errors": errors,
            "comment": comment,
            "simulated": facts.tier != "real",
            "required": policy.approvals_required(
                "needs_approval", run.risk_tier, high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS
            ),
            "nav": "queue",
        },
        status=400 if errors else 200,
    )


# ---- promotion (issue 7) ---------------------------------------------------------------------


def _next_or(request: HttpRequest, default: str) -> str:
    """Where a form came from (POST `next`), only if it is a page of this site; else `default`."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _json_download(doc: dict, filename: str) -> HttpResponse:
    body = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_POST
def promotion_start(request: HttpRequest, bundle_id: str) -> HttpResponse:
    """The Promote (dry-run) button: one attempt against the site inventory, then its record."""
    bundle_row = promote_selectors.access_bundle_to_promote(request.user, bundle_id)
    try:
        devices = services.inventory_site()
        bundle = services.bundle_read(bundle_row.bundle_json.encode("ascii"))
        services.inventory_covers(bundle, devices)
    except services.PromotionInputError as exc:
        messages.error(request, f"Promotion not started: {exc}")
        return redirect(_next_or(request, "promote:queue"))
    row = services.promotion_attempt(
        actor=request.user,
        bundle=bundle,
        approvals=promote_selectors.signed_approvals_for_bundle(bundle_row.digest),
        devices=devices,
        live=False,  # the screens only dry-run; live is the CLI/API with the site opt-in
        via="web",
    )
    return redirect("promote:promotion", record_id=row.pk)


@login_required
def promotion_detail(request: HttpRequest, record_id: str) -> HttpResponse:
    row = promote_selectors.access_promotion(request.user, record_id)
    return render(
        request,
        "promote/promotion.html",
        {"p": row, "rec": row.record, "devices": sorted(row.record.get("devices", {}).items())},
    )


@login_required
def promotion_json(request: HttpRequest, record_id: str) -> HttpResponse:
    row = promote_selectors.access_promotion(request.user, record_id)
    return _json_download(row.record, f"aegis-promotion-{row.pk}.json")


@login_required
def approval_json(request: HttpRequest, approval_id: str) -> HttpResponse:
    """A decision's signed approval (DSSE envelope): the file `manage.py promote --approval` takes."""
    row = promote_selectors.access_signed_approval(request.user, approval_id)
    return _json_download(
        row.envelope, f"aegis-approval-{row.approval.run.run_id}-{row.approval.approver}.json"
    )
