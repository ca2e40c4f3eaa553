"""Deliver outbox messages to the national platform: claim with a lease, send, record, repeat.

SIGTERM/SIGINT: finish the message in hand, give back the leases not started, exit 0. The message in hand
takes at most the destination's deadline (RELAIS_TRANSFER_DEADLINE): a hung receiver cannot hold the worker.
A killed worker's leases expire (RELAIS_TRANSFER_LEASE_SECONDS) and another worker resumes.
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

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from relais.core.context import request_context
from relais.transfer.delivery import RECORD_MARGIN, Deliverer
from relais.transfer.destinations import destination
from relais.transfer.services import outbox_claim, outbox_record, outbox_release

log = logging.getLogger("relais.transfer")


class Command(BaseCommand):
    help = "Run the transfer worker (long-running)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls of an empty queue")
        parser.add_argument("--until-empty", action="store_true", help="exit once nothing is due (tests, one-off runs)")
        parser.add_argument("--max-seconds", type=float, default=0, help="stop after this long (0: run forever)")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = threading.Event()
        target = destination()
        lease_seconds = settings.RELAIS_TRANSFER["lease_seconds"]
        if target.deadline + RECORD_MARGIN > lease_seconds:
            # Otherwise a message still being sent could be claimed, and sent, by another worker.
            raise CommandError(
                f"destination {target.name}: the exchange deadline ({target.deadline:g} s) must end at least "
                f"{RECORD_MARGIN:g} s before the lease (RELAIS_TRANSFER_LEASE_SECONDS={lease_seconds})"
            )

        def stop(signum: int, _frame: Any) -> None:
            log.info("transfer worker: signal %s, finishing the message in hand (at most %g s)", signum, target.deadline)
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        deliverer = Deliverer(target, concurrency=settings.RELAIS_TRANSFER["concurrency"])
        limit = max(settings.RELAIS_TRANSFER["claim_batch"], target.batch_size)
        deadline = time.monotonic() + options["max_seconds"] if options["max_seconds"] else None
        delivered = 0
        log.info("transfer worker %s: destination %s (%s over %s)", owner, target.name, target.message_format, target.transport)
        with request_context(channel="transfer", request_id=owner):
            try:
                while not stopping.is_set() and (deadline is None or time.monotonic() < deadline):
                    close_old_connections()
                    lease_ends = time.monotonic() + lease_seconds - RECORD_MARGIN
                    claimed = outbox_claim(owner=owner, limit=limit)
                    if not claimed:
                        if options["until_empty"]:
                            break
                        stopping.wait(options["poll"])
                        continue
                    outcomes = deliverer.deliver(claimed, stopping=stopping, until=lease_ends)
                    if outcomes:
                        outbox_record(owner=owner, outcomes=outcomes)
                    retries = [o.detail for o in outcomes.values() if o.kind == "transient"]
                    if retries:
                        log.warning("transfer worker: %d message(s) to retry: %s", len(retries), "; ".join(sorted(set(retries))))
                    unstarted = [m.id for m in claimed if m not in outcomes]
                    if unstarted:
                        outbox_release(owner=owner, ids=unstarted)
                    delivered += sum(1 for o in outcomes.values() if o.kind == "acknowledged")
            finally:
                deliverer.close()
        self.stdout.write(f"transfer worker {owner}: {delivered} acknowledged, stopped")
