"""Issue 16 item 4: the invalid result moves from SNOMED CT US extension 455371000124106 to SNOMED CT International
125154007 "Specimen unsatisfactory for evaluation". Stored rows are converted; the reverse converts them back."""

from typing import Any

from django.db import migrations, models

OLD = "455371000124106"
NEW = "125154007"


def forwards(apps: Any, schema_editor: Any) -> None:
    apps.get_model("screenings", "ScreeningResult").objects.filter(result=OLD).update(result=NEW)


def backwards(apps: Any, schema_editor: Any) -> None:
    apps.get_model("screenings", "ScreeningResult").objects.filter(result=NEW).update(result=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("screenings", "0006_kit_barcodes_and_pins"),
    ]

    operations = [
        migrations.AlterField(
            model_name="screeningresult",
            name="result",
            field=models.CharField(
                choices=[
                    ("260373001", "Detected (positive)"),
                    ("260415000", "Not detected (negative)"),
                    ("125154007", "Invalid (test to repeat)"),
                ],
                max_length=20,
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
