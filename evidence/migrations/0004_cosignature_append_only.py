"""On PostgreSQL, witness cosignatures are append-only too (same trigger function as 0002)."""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE TRIGGER evidence_cosignature_append_only BEFORE UPDATE OR DELETE ON evidence_cosignature "
        "FOR EACH ROW EXECUTE FUNCTION aegis_ledger_refuse_change();"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS evidence_cosignature_append_only ON evidence_cosignature;")


class Migration(migrations.Migration):
    dependencies = [("evidence", "0003_cosignature")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
