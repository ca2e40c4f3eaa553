"""One lease column name across every queue (relais.core.queue), and a count of unexpected errors per message."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notify", "0002_notification_handed_off_at")]

    operations = [
        migrations.RenameField(model_name="notification", old_name="lease_expires_at", new_name="lease_until"),
        migrations.AddField(model_name="notification", name="error_count", field=models.PositiveIntegerField(default=0)),
    ]
