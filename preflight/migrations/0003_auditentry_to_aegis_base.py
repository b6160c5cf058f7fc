# AuditEntry now belongs to aegis_base (its 0001 took over and renamed the table); this only
# drops the model from preflight's migration state. No database change.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("preflight", "0002_run_blast"),
        ("aegis_base", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="AuditEntry")]),
    ]
