"""Filters of the bundle browser (page and API), as a django-filter FilterSet (NetBox's convention).

The queryset it filters is already narrowed to what the user may see (`bundles_for_user`); a
filter only narrows further. A bad value is a form error naming the field and the fix.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db import connection
from django.db.models import QuerySet

from evidence.models import Bundle

VERDICTS = ("blocked", "needs_approval", "ship_ready")
DATE_ERROR = {"invalid": "%(value)s is not a date; use YYYY-MM-DD."}


class _Date(forms.DateField):
    """A date in ISO form only (YYYY-MM-DD), with the value named in the error."""

    input_formats = ["%Y-%m-%d"]

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError:
            raise forms.ValidationError(DATE_ERROR["invalid"] % {"value": repr(value)}, code="invalid") from None


class _DateFilter(django_filters.DateFilter):
    field_class = _Date


class BundleFilterSet(django_filters.FilterSet):
    date_from = _DateFilter(field_name="created", lookup_expr="date__gte")
    date_to = _DateFilter(field_name="created", lookup_expr="date__lte")
    lab = django_filters.CharFilter(field_name="lab_name", max_length=200)
    verdict = django_filters.ChoiceFilter(
        choices=[(v, v) for v in VERDICTS],
        error_messages={"invalid_choice": "Choose blocked, needs_approval or ship_ready."},
    )
    framework = django_filters.CharFilter(method="filter_framework", max_length=100)
    operator = django_filters.CharFilter(field_name="operator_username", max_length=150)

    class Meta:
        model = Bundle
        fields: list[str] = []

    def filter_framework(self, queryset: QuerySet[Bundle], name: str, value: str) -> QuerySet[Bundle]:
        if connection.vendor == "postgresql":
            return queryset.filter(frameworks__contains=[value])
        # SQLite has no JSON containment; a first-try database is small.
        ids = [pk for pk, fws in queryset.values_list("pk", "frameworks") if value in (fws or [])]
        return queryset.filter(pk__in=ids)


def filter_errors(filterset: django_filters.FilterSet) -> dict[str, str]:
    """{field: first message} of a filterset's form, as the pages and the API show them."""
    return {name: str(messages[0]) for name, messages in filterset.errors.items()}
