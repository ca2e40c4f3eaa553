from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.accounts.models import Pharmacy
from relais.api.services import apiclient_create
from relais.core.context import request_context


class Command(BaseCommand):
    help = "Register an API client for a pharmacy from its public key (PEM: EC P-256 or RSA >= 2048); prints the client id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pharmacy", required=True, help="FINESS number")
        parser.add_argument("--public-key", required=True, type=Path, help="PEM file holding the client's PUBLIC key")
        parser.add_argument("--name", default="pharmacy software")

    def handle(self, *args: Any, **options: Any) -> None:
        pharmacy = Pharmacy.objects.filter(finess=options["pharmacy"]).first()
        if pharmacy is None:
            raise CommandError(f"no pharmacy with FINESS {options['pharmacy']}")
        try:
            pem = options["public_key"].read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {options['public_key']}: {exc.strerror}") from exc
        if "PRIVATE KEY" in pem:
            raise CommandError("this file holds a PRIVATE key: give the public key only (openssl pkey -pubout)")
        try:
            with request_context(channel="cli"):
                client = apiclient_create(actor=None, pharmacy=pharmacy, name=options["name"], public_key_pem=pem)
        except ValidationError as exc:
            raise CommandError("; ".join(m for ms in exc.message_dict.values() for m in ms)) from exc
        self.stdout.write(str(client.pk))
