"""Answer breach questions from the audit log: who accessed an object, what an account did, when."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from relais.audit.models import AuditEvent, AuditSubject


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"not an ISO 8601 date-time: {value}")
    return parsed


class Command(BaseCommand):
    help = "List audit events by object id (who saw patient X) or by account (what did Y read), optionally between two times."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--object", help="a patient, screening or user UUID")
        parser.add_argument("--actor", help="a staff email")
        parser.add_argument("--since", help="ISO 8601 date-time")
        parser.add_argument("--until", help="ISO 8601 date-time")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["object"] and not options["actor"]:
            raise CommandError("give --object UUID or --actor EMAIL")
        events = AuditEvent.objects.order_by("id")
        if options["actor"]:
            events = events.filter(actor_label=options["actor"].lower())
        if since := _when(options["since"]):
            events = events.filter(occurred_at__gte=since)
        if until := _when(options["until"]):
            events = events.filter(occurred_at__lt=until)
        if options["object"]:
            try:
                wanted = uuid.UUID(options["object"])
            except ValueError as exc:
                raise CommandError(f"--object: not a UUID: {options['object']}") from exc
            events = events.filter(id__in=AuditSubject.objects.filter(object_id=wanted).values("event_id"))
        count = 0
        for event in events.iterator():
            count += 1
            row = {
                "time": event.occurred_at.isoformat(),
                "actor": event.actor_label,
                "role": event.actor_role,
                "action": event.action,
                "objects": event.object_ids,
                "pharmacy": str(event.pharmacy_id or ""),
                "request": event.request_id,
                "ip": event.client_ip or "",
            }
            if options["json"]:
                self.stdout.write(json.dumps(row))
            else:
                self.stdout.write(f"{row['time']}  {row['actor']:<30} {row['action']:<24} ip={row['ip']} request={row['request']}")
        self.stderr.write(f"{count} event(s)")
