# AuditEntry moves from preflight to aegis_base (issue 16): the rows stay, only the owner
# changes. The model is created here in state only over preflight's existing table, which is
# then renamed; preflight 0003 drops the model from its own state.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("preflight", "0002_run_blast"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEntry",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ("actor_name", models.CharField(max_length=150)),
                        ("action", models.CharField(max_length=40)),
                        ("target", models.CharField(max_length=100)),
                        ("detail", models.JSONField(blank=True, default=dict)),
                        (
                            "actor",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "audit entries",
                        "ordering": ["-at"],
                        "db_table": "preflight_auditentry",
                    },
                ),
            ],
        ),
        # Now the real rename: preflight_auditentry -> aegis_base_auditentry.
        migrations.AlterModelTable(name="auditentry", table=None),
    ]
