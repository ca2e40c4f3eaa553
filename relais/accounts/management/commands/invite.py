from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.accounts.models import Pharmacy, Role
from relais.accounts.services import invitation_create
from relais.core.context import request_context


class Command(BaseCommand):
    help = "Create a single-use invitation link (e.g. the first platform operator)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--role", choices=Role.values, required=True)
        parser.add_argument("--pharmacy", help="FINESS number of the pharmacy (pharmacy roles)")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        pharmacy = None
        if options["pharmacy"]:
            pharmacy = Pharmacy.objects.filter(finess=options["pharmacy"]).first()
            if pharmacy is None:
                raise CommandError(f"no pharmacy with FINESS {options['pharmacy']}")
        try:
            with request_context(channel="cli"):
                issued = invitation_create(actor=None, email=options["email"], role=options["role"], pharmacy=pharmacy)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(f"{options['base_url'].rstrip('/')}/invite/{issued.token}/  (single use, valid 72 hours)")
