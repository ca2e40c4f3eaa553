from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from relais.audit.services import audit_record
from relais.core.context import request_context
from relais.transfer.models import OutboxMessage, TransferStatus


class Command(BaseCommand):
    help = "Queue rejected messages again (after the cause was fixed): --all, or --reason TEXT to pick by reason."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true")
        parser.add_argument("--reason", default="", help="only rejections whose reason contains this text")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["all"] and not options["reason"]:
            self.stderr.write("give --all or --reason TEXT")
            return
        query = OutboxMessage.objects.filter(status=TransferStatus.REJECTED)
        if options["reason"]:
            query = query.filter(rejection_reason__icontains=options["reason"])
        with request_context(channel="cli"), transaction.atomic():
            ids = list(query.select_for_update().values_list("id", flat=True))
            OutboxMessage.objects.filter(id__in=ids).update(
                status=TransferStatus.PENDING, next_attempt_at=timezone.now(), rejection_reason="", rejected_at=None
            )
            if ids:
                audit_record(actor=None, action="transfer.resend", object_type="outbox", object_ids=ids)
        self.stdout.write(f"{len(ids)} message(s) queued again")
