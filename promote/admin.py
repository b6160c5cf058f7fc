from django.contrib import admin

from promote.models import Approval, ApprovalSigningKey, PromotionRecord, SignedApproval, UsedApprovalToken


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


class _ReadOnly(admin.ModelAdmin):
    # Written only by the services (signed, ledgered); the admin shows, never edits.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SignedApproval)
class SignedApprovalAdmin(_ReadOnly):
    list_display = ["approval", "jti", "bundle_digest", "expires", "ledger_index"]


@admin.register(ApprovalSigningKey)
class ApprovalSigningKeyAdmin(_ReadOnly):
    list_display = ["user", "keyid", "created"]
    exclude = ["private_key_encrypted"]


@admin.register(UsedApprovalToken)
class UsedApprovalTokenAdmin(_ReadOnly):
    list_display = ["jti", "bundle_digest", "used_by", "used"]


@admin.register(PromotionRecord)
class PromotionRecordAdmin(_ReadOnly):
    list_display = ["created", "run_id", "actor_name", "via", "mode", "outcome", "ledger_index"]
    list_filter = ["outcome", "mode", "via"]
