"""Patient message queue figures as JSON (for monitoring): no address, no name."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from relais.notify.selectors import notify_summary


class Command(BaseCommand):
    help = "Print the patient message queue figures as JSON."

    def handle(self, *args: Any, **options: Any) -> None:
        summary = notify_summary()
        age = summary.oldest_waiting_age
        self.stdout.write(
            json.dumps(
                {
                    "waiting": summary.waiting,
                    "oldest_waiting_seconds": round(age.total_seconds()) if age else None,
                    "sent_last_hour": summary.sent_last_hour,
                    "failed_last_day": summary.failed_last_day,
                    "failures_by_reason": dict(summary.failures_by_reason),
                }
            )
        )
