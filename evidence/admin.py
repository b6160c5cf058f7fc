"""Django admin for evidence: everything read-only. The ledger cannot be edited by design,
and a bundle row only changes when sealing writes it."""

from __future__ import annotations

from django.contrib import admin

from evidence.models import Bundle, Checkpoint, Cosignature, LedgerEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Bundle)
class BundleAdmin(ReadOnlyAdmin):
    list_display = ("run_id", "verdict", "tier", "lab_name", "operator_username", "ledger_index", "created")
    list_filter = ("verdict", "tier", "lab_name")
    search_fields = ("run_id", "digest", "operator_username")
    exclude = ("bundle_json",)  # large; download it from the auditor browser


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("index", "kind", "payload_digest", "ref", "created")
    list_filter = ("kind",)
    search_fields = ("payload_digest", "ref")


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("tree_size", "root_hash", "keyid", "created")


@admin.register(Cosignature)
class CosignatureAdmin(ReadOnlyAdmin):
    list_display = ("tree_size", "witness_name", "witness_keyid", "witnessed_at", "created")
