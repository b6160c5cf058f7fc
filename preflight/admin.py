from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from preflight.models import ChangeRequest, Lab, PreflightRun, RunEvent


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
