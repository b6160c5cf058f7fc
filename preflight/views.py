"""HTML views of the operator side: start page, run page, downloads. Thin: parse, authorize, call."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from aegis_base.core import policy
from evidence.models import Bundle
from evidence.views import bundle_download_response
from preflight import selectors, services
from preflight.core.desired import delta_text
from preflight.forms import ChangeForm
from preflight.result_sections import result_sections


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each role to its own start page."""
    roles = selectors.roles_of(request.user)
    if policy.OPERATOR in roles:
        return redirect("preflight:start")
    if policy.APPROVER in roles:
        return redirect("promote:queue")
    if policy.AUDITOR in roles:
        return redirect("evidence:bundles")
    return render(request, "aegis/no_role.html", status=403)


@login_required
@require_http_methods(["GET", "POST"])
def start(request: HttpRequest) -> HttpResponse:
    """The operator's start page: submit a change; my changes and runs."""
    actor = selectors.actor_of(request.user)
    if not policy.can_submit(actor):
        raise PermissionDenied("Only members of the operator group can submit changes.")
    labs = list(selectors.labs_enabled())
    lab_name = request.POST.get("lab_name") or request.GET.get("lab") or ""
    lab_name = lab_name or getattr(settings, "AEGIS_DEFAULT_LAB", "triangle")
    lab = next((candidate for candidate in labs if candidate.name == lab_name), labs[0] if labs else None)
    preview = ""
    desired: dict[str, str] = {}
    if request.method == "POST":
        form = ChangeForm(request.POST, request.FILES, lab=lab)
        if form.is_valid() and form.submission is not None:
            sub = form.submission
            try:
                if sub.desired and request.POST.get("action") != "run":
                    # Uploaded full configs: show frr-reload's delta; the operator runs it with a second click.
                    preview = delta_text(services.change_validate_desired(
                        lab=sub.lab, title=sub.title, description=sub.description, desired=sub.desired,
                        expect=sub.expect, source=sub.source))
                    desired = sub.desired
                else:
                    run = services.run_start(operator=request.user, submission=sub)
                    return redirect("preflight:run", run_id=run.run_id)
            except services.ChangeInvalid as exc:
                form.apply_errors(exc.errors)
        status = 200 if preview else 400
    else:
        form = ChangeForm(initial={"lab": lab.pk if lab else None}, lab=lab)
        status = 200
    return render(
        request,
        "preflight/start.html",
        {
            "form": form,
            "labs": labs,
            "lab": lab,
            "runs": selectors.my_runs(request.user),
            "preview": preview,
            "desired": desired,
        },
        status=status,
    )


@login_required
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    """The run page: live steps, then the verdict, diffs, findings and downloads."""
    run = selectors.access_run(request.user, run_id, with_result=False)
    # The steps show each step's latest event: not every event of the run (a long run has hundreds).
    events = selectors.events_latest_per_step(run)
    approvals = selectors.run_decisions(run)
    facts = selectors.run_facts(run, approvals)
    refusal = policy.decide_refusal(
        selectors.actor_of(request.user), facts, high_risk_approvers=settings.AEGIS_HIGH_RISK_APPROVERS
    )
    return render(
        request,
        "preflight/run.html",
        {
            "run": run,
            "change": run.change,
            "steps": selectors.run_steps(run, events),
            # Verdict and result tables: rendered once per sealed run (preflight/result_sections.py).
            "sections": result_sections(run),
            "approvals": approvals,
            "approval_state": selectors.run_approval_state(run, facts),
            "can_decide": refusal is None,
            "last_seq": max((ev.seq for ev in events), default=0),
            "simulated": facts.tier != "real",
        },
    )


@login_required
def run_result_json(request: HttpRequest, run_id: str) -> HttpResponse:
    run = selectors.access_run(request.user, run_id)
    if run.result is None:
        raise Http404("The run has no result yet.")
    response = JsonResponse(run.result, json_dumps_params={"indent": 2, "sort_keys": True})
    response["Content-Disposition"] = f'attachment; filename="aegis-result-{run.run_id}.json"'
    return response


@login_required
def run_download(request: HttpRequest, run_id: str, kind: str) -> HttpResponse:
    """The sealed bundle (JSON) or examiner PDF of a run: the bundle browser's one download path and access rule."""
    run = selectors.access_run(request.user, run_id, with_result=False)
    bundle = Bundle.objects.filter(run_id=run.run_id).only("pk").first()
    if bundle is None:
        raise Http404(f"Run {run.run_id} has no sealed bundle.")
    return bundle_download_response(request.user, bundle.pk, "json" if kind == "bundle" else "pdf")
