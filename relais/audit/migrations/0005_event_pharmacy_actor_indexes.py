"""Events of one pharmacy or one account, newest first, read from (pharmacy_id, id) and (actor_id, id); they replace the
single-column indexes (same number of indexes per event written). Only indexes change: the append-only triggers stay."""

from django.db import migrations, models

TABLE = "audit_auditevent"


def _single_column_indexes(schema_editor, column):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return [n for n, c in constraints.items() if c["index"] and c["columns"] == [column] and not (c["primary_key"] or c["unique"])]


def drop_single_indexes(apps, schema_editor):
    for column in ("pharmacy_id", "actor_id"):
        for name in _single_column_indexes(schema_editor, column):
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def restore_single_indexes(apps, schema_editor):
    model = apps.get_model("audit", "AuditEvent")
    for column in ("pharmacy_id", "actor_id"):
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field(column)]))


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_seal")]

    operations = [
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["pharmacy_id", "id"], name="audit_event_pharmacy")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["actor_id", "id"], name="audit_event_actor")),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="auditevent", name="pharmacy_id", field=models.UUIDField(null=True)),
                migrations.AlterField(model_name="auditevent", name="actor_id", field=models.UUIDField(null=True)),
            ],
            # AlterField would rebuild the table on SQLite (and drop its append-only triggers): only the indexes go.
            database_operations=[migrations.RunPython(drop_single_indexes, restore_single_indexes)],
        ),
    ]
