from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from relais.screenings.catalogue import BUNDLED_VALUE_SET, load_catalogue
from relais.screenings.models import Device


class Command(BaseCommand):
    help = "Load or update the device catalogue from an EU DCC value set file (covid-19-lab-test-manufacturer-and-name)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, default=BUNDLED_VALUE_SET)

    def handle(self, *args: Any, **options: Any) -> None:
        created, updated = load_catalogue(Device, options["file"])
        self.stdout.write(f"devices: {created} created, {updated} updated, {Device.objects.filter(active=True).count()} active")
