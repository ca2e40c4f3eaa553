"""A count of unexpected errors per webhook delivery (relais.core.queue parks a delivery at the fifth)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("api", "0003_accesstoken_key")]

    operations = [
        migrations.AddField(model_name="webhookdelivery", name="error_count", field=models.PositiveIntegerField(default=0)),
    ]
