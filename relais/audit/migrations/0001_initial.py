import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("public_id", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("occurred_at", models.DateTimeField(db_index=True)),
                ("actor_id", models.UUIDField(db_index=True, null=True)),
                ("actor_label", models.CharField(blank=True, max_length=254)),
                ("actor_role", models.CharField(blank=True, max_length=32)),
                ("pharmacy_id", models.UUIDField(db_index=True, null=True)),
                ("action", models.CharField(db_index=True, max_length=64)),
                ("object_type", models.CharField(blank=True, max_length=64)),
                ("object_ids", models.JSONField(default=list)),
                ("detail", models.JSONField(blank=True, default=dict)),
                ("request_id", models.CharField(blank=True, max_length=64)),
                ("client_ip", models.GenericIPAddressField(blank=True, null=True)),
                ("channel", models.CharField(blank=True, max_length=16)),
            ],
            options={"ordering": ["id"]},
        ),
    ]
