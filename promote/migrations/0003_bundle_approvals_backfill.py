"""Copy the decisions already recorded into `Bundle.approvals` (evidence 0005), so evidence
reads them from its own row instead of importing promote (issue 16)."""

from django.db import migrations

def forwards(apps, schema_editor):
    Approval = apps.get_model("promote", "Approval")
    Bundle = apps.get_model("evidence", "Bundle")
    for bundle in Bundle.objects.all().only("pk", "run_id"):
        rows = Approval.objects.filter(run__run_id=bundle.run_id).select_related("approver").order_by("created")
        records = [
            {
                "approver": a.approver.username,
                "role": "approver",
                "decision": a.decision,
                "at": a.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "bundle_digest": a.subject_digest,
            }
            for a in rows
        ]
        if records:
            Bundle.objects.filter(pk=bundle.pk).update(approvals=records)


class Migration(migrations.Migration):
    dependencies = [
        ("evidence", "0005_bundle_approvals"),
        ("promote", "0002_signed_approvals_promotion_records"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
