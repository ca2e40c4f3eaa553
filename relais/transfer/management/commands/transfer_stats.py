"""Queue figures for operators and scripts (no patient data). --messages lists every message's ids and state."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count

from relais.transfer.models import OutboxMessage
from relais.transfer.selectors import queue_summary


class Command(BaseCommand):
    help = "Print the transfer queue's depth, oldest age, outcomes and rejection reasons as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--messages", action="store_true", help="also list each message (ids, version, status)")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = queue_summary()
        report: dict[str, Any] = {
            "depth": summary.depth,
            "oldest_open_seconds": summary.oldest_open_age.total_seconds() if summary.oldest_open_age else None,
            "acknowledged_last_hour": summary.acknowledged_last_hour,
            "by_status": dict(OutboxMessage.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")),
            "rejections_by_reason": dict(summary.rejections_by_reason),
        }
        if options["messages"]:
            report["messages"] = [
                {
                    "message_id": m["message_id"],
                    "screening_id": str(m["screening_id"]),
                    "series_id": str(m["series_id"]),
                    "version": m["version"],
                    "status": m["status"],
                    "identity_withheld": m["screening__identity_withheld"],
                    "attempts": m["attempts"],
                }
                for m in OutboxMessage.objects.values(
                    "message_id", "screening_id", "series_id", "version", "status", "screening__identity_withheld", "attempts"
                )
            ]
        self.stdout.write(json.dumps(report))
