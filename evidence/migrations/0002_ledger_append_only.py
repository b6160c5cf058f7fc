"""On PostgreSQL, refuse UPDATE and DELETE on the ledger tables at the database level.

The application only ever inserts ledger rows; this makes that a property of the database,
so neither a bug nor a hand-typed SQL statement can rewrite the log. TRUNCATE is left to
the table owner (test databases are emptied that way); a site's application role should
not own the tables. Other databases get no trigger: `manage.py ledger_check` still detects
a rewritten log there, it just cannot prevent one.
"""

from django.db import migrations

TABLES = ("evidence_ledgerentry", "evidence_checkpoint")

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION aegis_ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'AEGIS ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION, params=None)  # None: the %s are plpgsql, not placeholders
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION aegis_ledger_refuse_change();"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
    schema_editor.execute("DROP FUNCTION IF EXISTS aegis_ledger_refuse_change();")


class Migration(migrations.Migration):
    dependencies = [("evidence", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
