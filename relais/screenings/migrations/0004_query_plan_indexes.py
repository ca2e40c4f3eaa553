"""Indexes the query-plan test (tests/core/test_query_plans.py) asks for: today's list ranges over (pharmacy,
recorded_at); the earlier-duplicate lookup reads (patient, sampled_at), which also serves what patient_id's own index
served, so that index is dropped (no extra write per test)."""

import django.db.models.deletion
from django.db import migrations, models

TABLE, COLUMN = "screenings_screening", "patient_id"


def _single_column_indexes(schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return [n for n, c in constraints.items() if c["index"] and c["columns"] == [COLUMN] and not (c["primary_key"] or c["unique"])]


def drop_patient_index(apps, schema_editor):
    for name in _single_column_indexes(schema_editor):
        schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def restore_patient_index(apps, schema_editor):
    model = apps.get_model("screenings", "Screening")
    schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field("patient")]))


class Migration(migrations.Migration):
    dependencies = [("screenings", "0003_information_notice_replaces_consent"), ("patients", "0003_retention_key")]

    operations = [
        migrations.RemoveIndex(model_name="screening", name="screenings__pharmac_aaf2e1_idx"),
        migrations.AddIndex(
            model_name="screening", index=models.Index(fields=["pharmacy", "recorded_at"], name="screening_pharmacy_recorded")
        ),
        migrations.AddIndex(model_name="screening", index=models.Index(fields=["patient", "sampled_at"], name="screening_patient_sampled")),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="screening",
                    name="patient",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="screenings", to="patients.patient"
                    ),
                )
            ],
            # AlterField would rebuild the whole table on SQLite: only the index goes.
            database_operations=[migrations.RunPython(drop_patient_index, restore_patient_index)],
        ),
    ]
