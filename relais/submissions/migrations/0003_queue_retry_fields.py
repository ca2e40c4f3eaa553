"""A CSV file that raises an unexpected error is retried after a backoff, then parked as failed (relais.core.queue)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("submissions", "0002_language")]

    operations = [
        migrations.AddField(model_name="submission", name="next_attempt_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="submission", name="error_count", field=models.PositiveIntegerField(default=0)),
        migrations.AddField(model_name="submission", name="last_error", field=models.CharField(blank=True, max_length=300)),
    ]
