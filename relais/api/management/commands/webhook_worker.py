"""Deliver signed webhook notifications: claim with a lease, POST, record, repeat.

SIGTERM/SIGINT: finish the delivery in hand, give back the leases not started, exit 0.
A killed worker's leases expire and another worker resumes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from relais.api.models import WebhookDelivery
from relais.api.webhooks import WebhookOutcome, webhook_claim, webhook_deliver_one, webhook_record, webhook_release
from relais.core.context import request_context

log = logging.getLogger("relais.webhooks")


class Command(BaseCommand):
    help = "Run the webhook delivery worker (long-running)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls of an empty queue")
        parser.add_argument("--once", action="store_true", help="deliver what is due now, then exit (tests, one-off runs)")
        parser.add_argument("--max-seconds", type=float, default=0, help="stop after this long (0: run forever)")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = threading.Event()

        def stop(signum: int, _frame: Any) -> None:
            log.info("webhook worker: signal %s, finishing the delivery in hand", signum)
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        deadline = time.monotonic() + options["max_seconds"] if options["max_seconds"] else None
        counts = {"delivered": 0, "retry": 0, "failed": 0}
        with request_context(channel="webhooks", request_id=owner):
            while not stopping.is_set() and (deadline is None or time.monotonic() < deadline):
                close_old_connections()
                claimed = webhook_claim(owner=owner)
                if not claimed:
                    if options["once"]:
                        break
                    stopping.wait(options["poll"])
                    continue
                done = self._deliver(owner, claimed, stopping)
                for outcome in done.values():
                    counts[outcome.kind] += 1
                unstarted = [d.pk for d in claimed if d not in done]
                if unstarted:
                    webhook_release(owner=owner, ids=unstarted)
        self.stdout.write(f"webhook worker {owner}: {counts['delivered']} delivered, {counts['retry']} to retry, {counts['failed']} failed")

    def _deliver(self, owner: str, claimed: list[WebhookDelivery], stopping: threading.Event) -> dict[WebhookDelivery, WebhookOutcome]:
        done: dict[WebhookDelivery, WebhookOutcome] = {}
        unreachable: dict[Any, WebhookOutcome] = {}
        for delivery in claimed:
            if stopping.is_set():
                break
            # One unreachable receiver must not hold the queue for a timeout per notification: its others wait for the next round.
            outcome = unreachable.get(delivery.webhook_id) or webhook_deliver_one(delivery)
            if outcome.kind == "retry" and outcome.status_code is None:
                unreachable[delivery.webhook_id] = outcome
            webhook_record(owner=owner, outcomes={delivery: outcome})
            done[delivery] = outcome
            # Ids, event and outcome only: payloads hold no personal data, but URLs may carry a receiver's token.
            log.info(
                "webhook %s event=%s delivery=%s attempt=%d -> %s %s %s",
                delivery.webhook_id,
                delivery.event,
                delivery.pk,
                delivery.attempts + 1,
                outcome.kind,
                outcome.status_code or "-",
                outcome.detail[:120],
            )
        return done
