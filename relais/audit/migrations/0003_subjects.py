"""An index of the objects each event names, filled for existing events; append-only like the events."""

import uuid

from django.db import migrations, models

SQLITE = [
    "CREATE TRIGGER audit_subject_no_update BEFORE UPDATE ON audit_auditsubject "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;",
    "CREATE TRIGGER audit_subject_no_delete BEFORE DELETE ON audit_auditsubject "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;",
]
POSTGRES = [
    "CREATE TRIGGER audit_subject_no_update_delete BEFORE UPDATE OR DELETE ON audit_auditsubject "
    "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();",
    "CREATE TRIGGER audit_subject_no_truncate BEFORE TRUNCATE ON audit_auditsubject "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();",
]


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def backfill(apps, schema_editor):
    event_model = apps.get_model("audit", "AuditEvent")
    subject_model = apps.get_model("audit", "AuditSubject")
    batch = []
    for event_id, object_ids in event_model.objects.order_by("id").values_list("id", "object_ids").iterator():
        for value in dict.fromkeys(object_ids or []):
            if (object_id := _uuid(value)) is not None:
                batch.append(subject_model(event_id=event_id, object_id=object_id))
        if len(batch) >= 5000:
            subject_model.objects.bulk_create(batch)
            batch = []
    subject_model.objects.bulk_create(batch)


def triggers(apps, schema_editor):
    for statement in POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]
    operations = [
        migrations.CreateModel(
            name="AuditSubject",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("event_id", models.BigIntegerField()),
                ("object_id", models.UUIDField()),
            ],
            options={"indexes": [models.Index(fields=["object_id", "event_id"], name="audit_subject_object")]},
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(triggers, migrations.RunPython.noop),
    ]
