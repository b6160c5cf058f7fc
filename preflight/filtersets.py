"""Filters of the runs list (API), as a django-filter FilterSet over the runs the user may see."""

from __future__ import annotations

import django_filters

from preflight.models import PreflightRun


class RunFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PreflightRun.STATUS_CHOICES)
    verdict = django_filters.ChoiceFilter(choices=PreflightRun.VERDICT_CHOICES)
    risk_tier = django_filters.ChoiceFilter(choices=[(t, t) for t in ("low", "medium", "high")])
    backend = django_filters.CharFilter(max_length=20)
    lab = django_filters.CharFilter(field_name="change__lab__name", max_length=64)

    class Meta:
        model = PreflightRun
        fields: list[str] = []
