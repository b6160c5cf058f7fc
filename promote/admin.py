from django.contrib import admin

from promote.models import Approval


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    # Decisions are recorded through the approver pages (policy-checked), never typed in here.
    list_display = ["run", "approver", "decision", "created"]
    list_filter = ["decision"]
    readonly_fields = ["run", "approver", "decision", "comment", "subject_digest", "created"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
