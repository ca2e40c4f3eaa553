from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.core.context import request_context
from relais.transfer.services import outbox_resend_all


class Command(BaseCommand):
    help = "Queue rejected messages again (after the cause was fixed): --all, or --reason TEXT to pick by reason."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true")
        parser.add_argument("--reason", default="", help="only rejections whose reason contains this text")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["all"] and not options["reason"]:
            raise CommandError("give --all or --reason TEXT")
        with request_context(channel="cli"):
            count = outbox_resend_all(reason_contains=options["reason"])
        self.stdout.write(f"{count} message(s) queued again (or marked superseded by a later version)")
