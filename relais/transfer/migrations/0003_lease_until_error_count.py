"""One lease column name across every queue (relais.core.queue), and a count of unexpected errors per message."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("transfer", "0002_superseded")]

    operations = [
        migrations.RenameField(model_name="outboxmessage", old_name="lease_expires_at", new_name="lease_until"),
        migrations.AddField(model_name="outboxmessage", name="error_count", field=models.PositiveIntegerField(default=0)),
    ]
