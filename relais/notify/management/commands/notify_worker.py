"""Send patient messages (email, SMS): claim with a lease, send, record, repeat.

SIGTERM/SIGINT: finish the message in hand, give back the leases not started, exit 0.
A killed worker's leases expire and another worker resumes; nothing queued is lost.
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

from relais.core.context import request_context
from relais.notify.channels import send_batch
from relais.notify.models import Notification
from relais.notify.services import SendOutcome, notify_claim, notify_record, notify_release, notify_touch, scrub

log = logging.getLogger("relais.notify")


class _Stop(Exception):
    pass


class Command(BaseCommand):
    help = "Run the patient notification worker (long-running)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls of an empty queue")
        parser.add_argument("--once", action="store_true", help="send what is due now, then exit")
        parser.add_argument("--max-seconds", type=float, default=0, help="stop after this long (0: run forever)")
        parser.add_argument("--batch", type=int, default=50, help="messages claimed at a time")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = threading.Event()

        def stop(signum: int, _frame: Any) -> None:
            log.info("notify worker: signal %s, finishing the message in hand", signum)
            stopping.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        deadline = time.monotonic() + options["max_seconds"] if options["max_seconds"] else None
        counts = {"sent": 0, "retry": 0, "failed": 0}
        with request_context(channel="notify", request_id=owner):
            while not stopping.is_set() and (deadline is None or time.monotonic() < deadline):
                close_old_connections()
                claimed = notify_claim(owner=owner, limit=options["batch"])
                if not claimed:
                    if options["once"]:
                        break
                    stopping.wait(options["poll"])
                    continue
                done: set[Notification] = set()

                def record(notification: Notification, outcome: SendOutcome, done: set[Notification] = done) -> None:
                    notify_record(owner=owner, outcomes={notification: outcome})
                    done.add(notification)
                    counts[outcome.kind] += 1
                    # Ids and outcome only: the address is personal data.
                    log.info(
                        "notification %s %s attempt=%d -> %s %s",
                        notification.pk,
                        notification.channel,
                        notification.attempts + 1,
                        outcome.kind,
                        scrub(outcome.detail)[:120],
                    )
                    if stopping.is_set():
                        raise _Stop

                try:
                    send_batch(claimed, on_outcome=record, before_send=lambda n: notify_touch(owner=owner, notification=n))
                except _Stop:
                    pass
                unstarted = [n.pk for n in claimed if n not in done]
                if unstarted:
                    notify_release(owner=owner, ids=unstarted)
        self.stdout.write(f"notify worker {owner}: {counts['sent']} sent, {counts['retry']} to retry, {counts['failed']} failed")
