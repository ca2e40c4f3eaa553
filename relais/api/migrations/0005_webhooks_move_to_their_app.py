"""Webhook and WebhookDelivery now belong to the webhooks app (webhooks.0001 took them over, tables and rows unchanged):
removed from api's state only, nothing dropped."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0004_webhookdelivery_error_count"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="WebhookDelivery"),
                migrations.DeleteModel(name="Webhook"),
            ],
        ),
    ]
