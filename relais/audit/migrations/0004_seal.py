"""Sealing: the chain of sealed events, the signed checkpoints and the purge permits, all append-only.

Deletes stay refused on events, subjects and seals unless the row's sequence lies in a segment named by an
AuditPurgedSegment row (retention purges whole checkpointed segments). That opening is safe: whoever can insert a permit
can also drop the triggers, and audit_verify checks that purged segments are a prefix of the chain ending on a signed
checkpoint, so a permit only ever buys what dropping the triggers would, and nothing goes undetected.
"""

from django.db import migrations, models

# The seq of an event's seal lies in a purged segment.
_EVENT_PURGED = (
    "EXISTS (SELECT 1 FROM audit_auditseal s JOIN audit_auditpurgedsegment p "
    "ON p.seq_first <= s.seq AND p.seq_last >= s.seq WHERE s.event_id = {event})"
)
_SEQ_PURGED = "EXISTS (SELECT 1 FROM audit_auditpurgedsegment p WHERE p.seq_first <= {seq} AND p.seq_last >= {seq})"
_REFUSE = "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;"

SQLITE = [
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
    "DROP TRIGGER IF EXISTS audit_subject_no_delete",
    f"CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent WHEN NOT {_EVENT_PURGED.format(event='OLD.id')} {_REFUSE}",
    "CREATE TRIGGER audit_subject_no_delete BEFORE DELETE ON audit_auditsubject "
    f"WHEN NOT {_EVENT_PURGED.format(event='OLD.event_id')} {_REFUSE}",
    f"CREATE TRIGGER audit_seal_no_update BEFORE UPDATE ON audit_auditseal {_REFUSE}",
    f"CREATE TRIGGER audit_seal_no_delete BEFORE DELETE ON audit_auditseal WHEN NOT {_SEQ_PURGED.format(seq='OLD.seq')} {_REFUSE}",
    f"CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_auditcheckpoint {_REFUSE}",
    f"CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_auditcheckpoint {_REFUSE}",
    f"CREATE TRIGGER audit_purged_no_update BEFORE UPDATE ON audit_auditpurgedsegment {_REFUSE}",
    f"CREATE TRIGGER audit_purged_no_delete BEFORE DELETE ON audit_auditpurgedsegment {_REFUSE}",
]
POSTGRES = [
    "CREATE OR REPLACE FUNCTION audit_delete_if_purged() RETURNS trigger AS $$ "
    "DECLARE covered boolean; "
    "BEGIN "
    "IF TG_TABLE_NAME = 'audit_auditseal' THEN "
    f"SELECT {_SEQ_PURGED.format(seq='OLD.seq')} INTO covered; "
    "ELSIF TG_TABLE_NAME = 'audit_auditevent' THEN "
    f"SELECT {_EVENT_PURGED.format(event='OLD.id')} INTO covered; "
    "ELSE "
    f"SELECT {_EVENT_PURGED.format(event='OLD.event_id')} INTO covered; "
    "END IF; "
    "IF covered THEN RETURN OLD; END IF; "
    "RAISE EXCEPTION 'audit events are append-only'; "
    "END; $$ LANGUAGE plpgsql;",
    "DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_auditevent",
    "DROP TRIGGER IF EXISTS audit_subject_no_update_delete ON audit_auditsubject",
]
for _table, _name in (
    ("audit_auditevent", "audit_event"),
    ("audit_auditsubject", "audit_subject"),
    ("audit_auditseal", "audit_seal"),
):
    POSTGRES += [
        f"CREATE TRIGGER {_name}_no_update BEFORE UPDATE ON {_table} FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();",
        f"CREATE TRIGGER {_name}_no_delete BEFORE DELETE ON {_table} FOR EACH ROW EXECUTE FUNCTION audit_delete_if_purged();",
    ]
for _table, _name in (("audit_auditcheckpoint", "audit_checkpoint"), ("audit_auditpurgedsegment", "audit_purged")):
    POSTGRES += [
        f"CREATE TRIGGER {_name}_no_update_delete BEFORE UPDATE OR DELETE ON {_table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();",
    ]
for _table, _name in (
    ("audit_auditseal", "audit_seal"),
    ("audit_auditcheckpoint", "audit_checkpoint"),
    ("audit_auditpurgedsegment", "audit_purged"),
):
    POSTGRES.append(
        f"CREATE TRIGGER {_name}_no_truncate BEFORE TRUNCATE ON {_table} FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();"
    )


def triggers(apps, schema_editor):
    for statement in POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_subjects"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq_first", models.BigIntegerField(unique=True)),
                ("seq_last", models.BigIntegerField(unique=True)),
                ("count", models.IntegerField()),
                ("merkle_root", models.CharField(max_length=64)),
                ("chain_hash", models.CharField(max_length=64)),
                ("previous_checkpoint_hash", models.CharField(max_length=64)),
                ("checkpoint_hash", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField()),
                ("key_id", models.CharField(max_length=64)),
                ("signature", models.CharField(max_length=128)),
            ],
            options={
                "ordering": ["seq_last"],
            },
        ),
        migrations.CreateModel(
            name="AuditPurgedSegment",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq_first", models.BigIntegerField(unique=True)),
                ("seq_last", models.BigIntegerField(unique=True)),
                ("checkpoint_hash", models.CharField(max_length=64, unique=True)),
                ("purged_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["seq_last"],
            },
        ),
        migrations.CreateModel(
            name="AuditSeal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField(unique=True)),
                ("event_id", models.BigIntegerField(unique=True)),
                ("content_hash", models.CharField(max_length=64)),
                ("chain_hash", models.CharField(max_length=64)),
                ("sealed_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["seq"],
            },
        ),
        migrations.RunPython(triggers, migrations.RunPython.noop),
    ]
