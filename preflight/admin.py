from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from guardian.admin import GuardedModelAdmin

from preflight.models import ChangeRequest, Lab, PreflightRun, RunEvent
from twin.pool import pool_status_read


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ["name", "folder", "enabled", "updated"]
    list_filter = ["enabled"]
    readonly_fields = ["digest", "routers", "criticality", "invariants", "updated"]


@admin.register(ChangeRequest)
class ChangeRequestAdmin(GuardedModelAdmin):
    list_display = ["title", "lab", "operator", "source", "created"]
    list_filter = ["lab", "source"]
    search_fields = ["title", "operator__username"]
    readonly_fields = ["operator", "lab", "devices", "intent", "expect", "frameworks", "source", "created"]

    # A change is made by its operator (form, API, CLI) and is part of its runs' evidence: the admin
    # grants object permissions here (guardian) but neither adds nor deletes changes.
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RunEventInline(admin.TabularInline):
    model = RunEvent
    extra = 0
    can_delete = False
    readonly_fields = ["seq", "step", "status", "message", "data", "created"]


@admin.register(PreflightRun)
class PreflightRunAdmin(GuardedModelAdmin):
    # Runs are evidence: the admin may look, never rewrite a verdict.
    list_display = ["run_id", "change", "backend", "status", "verdict", "risk_tier", "created"]
    list_filter = ["status", "verdict", "backend"]
    search_fields = ["run_id", "change__title"]
    readonly_fields = [f.name for f in PreflightRun._meta.fields]
    inlines = [RunEventInline]

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # a run is made by a submission, never typed in

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting a run would remove evidence a sealed bundle points to

    def get_urls(self) -> list[URLPattern]:
        # A read-only page beside the runs: what the long-lived workers hold warm (twin/pool.py).
        own = [path("warm-twins/", self.admin_site.admin_view(self.warm_twins_view), name="preflight_warm_twins")]
        return own + super().get_urls()

    def warm_twins_view(self, request: HttpRequest) -> HttpResponse:
        """Every warm-twin pool on this host, from the status file each holder rewrites on every change."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        pools = pool_status_read(settings.AEGIS_WARM_STATUS_DIR)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Warm twins",
            "opts": self.model._meta,
            "pools": pools,
            "live": [p for p in pools if not p["stale"]],
            "stale": [p for p in pools if p["stale"]],
            "status_dir": settings.AEGIS_WARM_STATUS_DIR,
            "budget_mb": settings.AEGIS_WARM_TWINS_MB,
        }
        return TemplateResponse(request, "admin/preflight/warm_twins.html", context)
