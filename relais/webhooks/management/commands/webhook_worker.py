"""Deliver signed webhook notifications: claim with a lease, POST, record, repeat (relais.core.worker).

A killed worker's leases expire and another worker resumes.
"""

from __future__ import annotations

from typing import Any

from relais.core.queue import log_unexpected, unstarted
from relais.core.worker import Worker, worker_command
from relais.webhooks.delivery import (
    CLAIM_BATCH,
    WebhookOutcome,
    webhook_claim,
    webhook_deliver_one,
    webhook_record,
    webhook_record_error,
    webhook_release,
)
from relais.webhooks.models import WebhookDelivery


class WebhookWorker(Worker):
    name = "webhooks"
    batch = CLAIM_BATCH
    counted = ("delivered", "retry", "failed", "errors")

    def round(self) -> int:
        claimed = webhook_claim(owner=self.owner, limit=self.limit)
        if not claimed:
            return 0
        done: list[WebhookDelivery] = []
        unreachable: dict[Any, WebhookOutcome] = {}
        for delivery in claimed:
            if self.stopping.is_set():
                break
            done.append(delivery)
            try:
                # One unreachable receiver must not hold the queue for a timeout per notification: its others wait for the next round.
                outcome = unreachable.get(delivery.webhook_id) or webhook_deliver_one(delivery)
            except Exception as exc:
                error = log_unexpected(self.log, exc, f"webhook delivery {delivery.pk}")
                webhook_record_error(owner=self.owner, delivery=delivery, error=error)
                self.counts["errors"] += 1
                continue
            if outcome.kind == "retry" and outcome.status_code is None:
                unreachable[delivery.webhook_id] = outcome
            webhook_record(owner=self.owner, outcomes={delivery: outcome})
            self.counts[outcome.kind] += 1
            # Ids, event and outcome only: payloads hold no personal data, but URLs may carry a receiver's token.
            self.log.info(
                "webhook %s event=%s delivery=%s attempt=%d -> %s %s %s",
                delivery.webhook_id,
                delivery.event,
                delivery.pk,
                delivery.attempts + 1,
                outcome.kind,
                outcome.status_code or "-",
                outcome.detail[:120],
            )
        webhook_release(owner=self.owner, ids=unstarted(claimed, done))
        return len(claimed)


Command = worker_command(WebhookWorker)
