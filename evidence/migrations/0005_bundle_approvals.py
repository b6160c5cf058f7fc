from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("evidence", "0004_cosignature_append_only"),
    ]

    operations = [
        migrations.AddField(
            model_name="bundle",
            name="approvals",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
