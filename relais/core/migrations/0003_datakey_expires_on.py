from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_scheduledjob"),
    ]

    operations = [
        migrations.AddField(
            model_name="datakey",
            name="expires_on",
            field=models.DateField(blank=True, null=True, unique=True),
        ),
    ]
