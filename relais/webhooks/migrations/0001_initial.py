"""Webhook and WebhookDelivery move here from the api app: the models are created in Django's state only, on the tables
api_webhook and api_webhookdelivery that already hold their rows (api.0005 removes them from api's state afterwards).
Content types follow, so permissions given on them are kept."""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_content_types(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in ("webhook", "webhookdelivery"):
        if not content_type.objects.filter(app_label="webhooks", model=model).exists():
            content_type.objects.filter(app_label="api", model=model).update(app_label="webhooks")


def restore_content_types(apps, schema_editor):  # type: ignore[no-untyped-def]
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in ("webhook", "webhookdelivery"):
        if not content_type.objects.filter(app_label="api", model=model).exists():
            content_type.objects.filter(app_label="webhooks", model=model).update(app_label="api")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("api", "0004_webhookdelivery_error_count"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("screenings", "0002_load_device_catalogue"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],  # the tables exist already (created by api.0002 and api.0004)
            state_operations=[
                migrations.CreateModel(
                    name="Webhook",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("url", models.URLField(max_length=500)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("disabled_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "client",
                            models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="webhooks", to="api.apiclient"),
                        ),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "api_webhook"},
                ),
                migrations.CreateModel(
                    name="WebhookDelivery",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("event", models.CharField(max_length=40)),
                        ("payload", models.JSONField()),
                        (
                            "status",
                            models.CharField(
                                choices=[("pending", "Pending"), ("delivered", "Delivered"), ("failed", "Failed")],
                                default="pending",
                                max_length=16,
                            ),
                        ),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("next_attempt_at", models.DateTimeField(db_index=True)),
                        ("lease_owner", models.CharField(blank=True, max_length=100)),
                        ("lease_until", models.DateTimeField(blank=True, null=True)),
                        ("error_count", models.PositiveIntegerField(default=0)),
                        ("last_attempt_at", models.DateTimeField(blank=True, null=True)),
                        ("last_status_code", models.PositiveIntegerField(blank=True, null=True)),
                        ("last_error", models.CharField(blank=True, max_length=300)),
                        ("delivered_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "screening",
                            models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to="screenings.screening"),
                        ),
                        (
                            "webhook",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT, related_name="deliveries", to="webhooks.webhook"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "api_webhookdelivery",
                        "indexes": [models.Index(fields=["status", "next_attempt_at"], name="api_webhook_status_5921e6_idx")],
                    },
                ),
            ],
        ),
        migrations.RunPython(move_content_types, restore_content_types),
    ]
