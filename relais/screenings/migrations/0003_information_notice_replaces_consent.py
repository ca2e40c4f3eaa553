"""Identity goes to the national platform for every test (loi n° 2020-546, art. 11); the pharmacist confirms the notice.

Existing tests keep what they were recorded under: a test recorded without the old consent is marked identity_withheld
(still pseudonymous if it is ever sent again, still without a certificate). Nothing is enqueued or re-sent here:
the outbox is not touched. information_notice_given stays NULL on existing rows ("not recorded": the box did not exist).
"""

from django.db import migrations, models


def withhold_unconsented(apps, schema_editor):
    Screening = apps.get_model("screenings", "Screening")
    Screening.objects.filter(consent_share_identity=False).update(identity_withheld=True)


def consent_from_withheld(apps, schema_editor):
    Screening = apps.get_model("screenings", "Screening")
    Screening.objects.update(consent_share_identity=True)
    Screening.objects.filter(identity_withheld=True).update(consent_share_identity=False)


class Migration(migrations.Migration):
    dependencies = [("screenings", "0002_load_device_catalogue")]

    operations = [
        migrations.AddField(
            model_name="screening",
            name="information_notice_given",
            field=models.BooleanField(null=True),
        ),
        migrations.AddField(
            model_name="screening",
            name="identity_withheld",
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(  # nullable for the way back: the reverse fills it in before it is made required again
            model_name="screening",
            name="consent_share_identity",
            field=models.BooleanField(null=True),
        ),
        migrations.RunPython(withhold_unconsented, consent_from_withheld),
        migrations.RemoveField(model_name="screening", name="consent_share_identity"),
    ]
