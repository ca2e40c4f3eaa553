"""Deliver outbox messages to the national platform: claim with a lease, send, record, repeat (relais.core.worker).

The message in hand takes at most the destination's deadline (RELAIS_TRANSFER_DEADLINE): a hung receiver cannot hold
the worker. A killed worker's leases expire (RELAIS_TRANSFER_LEASE_SECONDS) and another worker resumes.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from relais.core.queue import log_unexpected, unstarted
from relais.core.worker import Worker, worker_command
from relais.transfer.delivery import RECORD_MARGIN, Deliverer
from relais.transfer.destinations import destination
from relais.transfer.models import OutboxMessage
from relais.transfer.outcome import Outcome
from relais.transfer.services import outbox_claim, outbox_record, outbox_record_error, outbox_release


class TransferWorker(Worker):
    name = "transfer"
    poll = 0.5
    counted = ("acknowledged", "rejected", "transient", "errors")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        target = destination()
        self.lease_seconds = settings.RELAIS_TRANSFER["lease_seconds"]
        if target.deadline + RECORD_MARGIN > self.lease_seconds:
            # Otherwise a message still being sent could be claimed, and sent, by another worker.
            raise CommandError(
                f"destination {target.name}: the exchange deadline ({target.deadline:g} s) must end at least "
                f"{RECORD_MARGIN:g} s before the lease (RELAIS_TRANSFER_LEASE_SECONDS={self.lease_seconds})"
            )
        self.batch = max(settings.RELAIS_TRANSFER["claim_batch"], target.batch_size)
        self.deliverer = Deliverer(target, concurrency=settings.RELAIS_TRANSFER["concurrency"])
        self.log.info("transfer worker %s: destination %s (%s over %s)", self.owner, target.name, target.message_format, target.transport)

    def close(self) -> None:
        self.deliverer.close()

    def round(self) -> int:
        lease_ends = time.monotonic() + self.lease_seconds - RECORD_MARGIN
        claimed = outbox_claim(owner=self.owner, limit=self.limit)
        if not claimed:
            return 0
        errored: list[OutboxMessage] = []
        try:
            outcomes = self.deliverer.deliver(claimed, stopping=self.stopping, until=lease_ends)
        except Exception:
            # One message raised (a decryption error, a bug): find it by sending one at a time, the others go out as usual.
            # A message the failed batch had already sent goes again under the same message id: the receiver keeps one.
            outcomes = self._one_at_a_time(claimed, lease_ends, errored)
        if outcomes:
            outbox_record(owner=self.owner, outcomes=outcomes)
        retries = [o.detail for o in outcomes.values() if o.kind == "transient"]
        if retries:
            self.log.warning("transfer worker: %d message(s) to retry: %s", len(retries), "; ".join(sorted(set(retries))))
        outbox_release(owner=self.owner, ids=unstarted(claimed, [*outcomes, *errored]))
        self.counts.update(o.kind for o in outcomes.values())
        return len(claimed)

    def _one_at_a_time(self, claimed: list[OutboxMessage], lease_ends: float, errored: list[OutboxMessage]) -> dict[OutboxMessage, Outcome]:
        outcomes: dict[OutboxMessage, Outcome] = {}
        for message in claimed:
            if self.stopping.is_set() or time.monotonic() >= lease_ends:
                break
            try:
                outcomes.update(self.deliverer.deliver([message], stopping=self.stopping, until=lease_ends))
            except Exception as exc:
                error = log_unexpected(self.log, exc, f"outbox message {message.pk}")
                outbox_record_error(owner=self.owner, message=message, error=error)
                errored.append(message)
                self.counts["errors"] += 1
        return outcomes


Command = worker_command(TransferWorker)
