"""Record uploaded CSV files row by row: claim a queued file with a lease, record it in chunks, repeat.

SIGTERM/SIGINT: finish the chunk in hand, hand the file back (the next worker resumes after the last chunk), exit 0.
A killed worker's lease runs out after two minutes and another worker resumes the file where it stopped.
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
from relais.submissions.models import Submission
from relais.submissions.services import csv_process, submission_claim_queued

log = logging.getLogger("relais.submissions")


class _Stop(Exception):
    pass


class Command(BaseCommand):
    help = "Run the CSV submission worker (long-running)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls of an empty queue")
        parser.add_argument("--until-empty", action="store_true", help="exit once no file is waiting (tests, one-off runs)")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = threading.Event()

        def stop(signum: int, _frame: Any) -> None:
            log.info("submission worker: signal %s, finishing the chunk in hand", signum)
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        files = 0
        with request_context(channel="csv", request_id=owner):
            while not stopping.is_set():
                close_old_connections()
                submission = submission_claim_queued(owner=owner)
                if submission is None:
                    if options["until_empty"]:
                        break
                    stopping.wait(options["poll"])
                    continue
                started = time.monotonic()

                def progress(done: int, total: int, submission_id: uuid.UUID = submission.pk) -> None:
                    log.info("submission %s: %d/%d rows", submission_id, done, total)
                    if stopping.is_set():
                        raise _Stop

                try:
                    result = csv_process(submission=submission, owner=owner, progress=progress)
                except _Stop:
                    Submission.objects.filter(pk=submission.pk, lease_owner=owner).update(lease_owner="", lease_until=None)
                    break
                except Exception as exc:  # one broken file must not stop the others; its lease runs out and it is retried
                    log.error("submission %s: %s, will be retried", submission.pk, type(exc).__name__)
                    stopping.wait(options["poll"])
                    continue
                files += 1
                log.info(
                    "submission %s: %s, %d accepted, %d duplicates, %d rejected in %.1f s",
                    result.pk,
                    result.status,
                    result.accepted,
                    result.duplicates,
                    result.rejected,
                    time.monotonic() - started,
                )
        self.stdout.write(f"submission worker {owner}: {files} files recorded, stopped")
