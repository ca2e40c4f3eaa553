"""Send patient messages (email, SMS): claim with a lease, send, record, repeat (relais.core.worker).

A killed worker's leases expire and another worker resumes; nothing queued is lost.
"""

from __future__ import annotations

from relais.core.queue import log_unexpected, unstarted
from relais.core.worker import Worker, worker_command
from relais.notify.channels import send_batch
from relais.notify.models import Notification
from relais.notify.services import SendOutcome, notify_claim, notify_record, notify_record_error, notify_release, notify_touch, scrub


class _Stop(Exception):
    pass


class NotifyWorker(Worker):
    name = "notify"
    batch = 50
    counted = ("sent", "retry", "failed", "errors")

    def round(self) -> int:
        claimed = notify_claim(owner=self.owner, limit=self.limit)
        if not claimed:
            return 0
        done: set[Notification] = set()
        in_hand: list[Notification] = []

        def before_send(notification: Notification) -> bool:
            in_hand[:] = [notification]
            return notify_touch(owner=self.owner, notification=notification)

        def record(notification: Notification, outcome: SendOutcome) -> None:
            notify_record(owner=self.owner, outcomes={notification: outcome})
            done.add(notification)
            self.counts[outcome.kind] += 1
            # Ids and outcome only: the address is personal data.
            self.log.info(
                "notification %s %s attempt=%d -> %s %s",
                notification.pk,
                notification.channel,
                notification.attempts + 1,
                outcome.kind,
                scrub(outcome.detail)[:120],
            )
            if self.stopping.is_set():
                raise _Stop

        try:
            send_batch(claimed, on_outcome=record, before_send=before_send)
        except _Stop:
            pass
        except Exception as exc:
            if not in_hand or in_hand[0] in done:
                raise  # not one message's fault (the channel itself): the loop waits and tries again
            # One message raised while being prepared (a decryption error, a bug): recorded on it, the others go on.
            notification = in_hand[0]
            notify_record_error(
                owner=self.owner, notification=notification, error=log_unexpected(self.log, exc, f"notification {notification.pk}")
            )
            done.add(notification)
            self.counts["errors"] += 1
        notify_release(owner=self.owner, ids=unstarted(claimed, done))
        return len(claimed)


Command = worker_command(NotifyWorker)
