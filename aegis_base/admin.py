from django.contrib import admin

from aegis_base.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_name", "action", "target"]
    list_filter = ["action"]
    search_fields = ["actor_name", "target"]
    readonly_fields = ["at", "actor", "actor_name", "action", "target", "detail"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
