from django.db import migrations


def load(apps, schema_editor):
    from relais.screenings.catalogue import load_catalogue

    load_catalogue(apps.get_model("screenings", "Device"))


class Migration(migrations.Migration):
    dependencies = [("screenings", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
