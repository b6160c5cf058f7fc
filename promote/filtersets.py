"""Filters of the decisions on a run (API), as a django-filter FilterSet."""

from __future__ import annotations

import django_filters

from promote.models import Approval


class ApprovalFilterSet(django_filters.FilterSet):
    decision = django_filters.ChoiceFilter(choices=Approval.DECISION_CHOICES)
    approver = django_filters.CharFilter(field_name="approver__username", max_length=150)

    class Meta:
        model = Approval
        fields: list[str] = []
