"""The transactional outbox: enqueue with the screening, claim with a lease, record what happened."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from relais.accounts.models import Role, User
from relais.audit.services import audit_record
from relais.core import queue
from relais.screenings.models import Screening
from relais.transfer.hooks import outcomes_settled
from relais.transfer.models import OPEN_STATUSES, OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome


def outbox_enqueue(*, screening: Screening) -> OutboxMessage:
    """Call inside the transaction that records the screening version: both commit or neither."""
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_enqueue must run in the screening's transaction")
    # No destination nor format yet: the worker that sends it decides, from the destination in force then.
    return OutboxMessage.objects.create(
        screening=screening,
        series_id=screening.series_id,
        version=screening.version,
        pharmacy_id=screening.pharmacy_id,
        next_attempt_at=timezone.now(),
    )


def backoff_seconds(attempts: int, *, retry_after: float | None = None) -> float:
    config = settings.RELAIS_TRANSFER
    return queue.backoff_seconds(attempts, base=config["backoff_base"], cap=config["backoff_cap"], retry_after=retry_after)


def _open_earlier_version() -> Exists:
    return Exists(OutboxMessage.objects.filter(series_id=OuterRef("series_id"), version__lt=OuterRef("version"), status__in=OPEN_STATUSES))


# related=(): the worker loads the screenings of a batch itself (delivery._load_screenings); following every foreign key
# here decrypted each patient a second time (17 % of the worker's CPU).
QUEUE = queue.LeasedQueue(
    OutboxMessage, open=Q(status__in=OPEN_STATUSES), lease_seconds=lambda: settings.RELAIS_TRANSFER["lease_seconds"], related=()
)


def outbox_claim(*, owner: str, limit: int, now: datetime | None = None) -> list[OutboxMessage]:
    """Lease up to ``limit`` due messages. A correction waits until its original is settled."""
    # A first version has no original to wait for: testing it first spares the subquery on nearly every due row
    # (SQLite evaluated it for the whole queue before sorting: 98 ms a claim at 10,000 due messages, 20 ms now).
    return QUEUE.claim(owner=owner, limit=limit, now=now, where=Q(version=1) | ~_open_earlier_version())


def outbox_release(*, owner: str, ids: list[uuid.UUID]) -> int:
    """Give back leases on messages not started (clean shutdown)."""
    return QUEUE.release(owner=owner, ids=ids)


def outbox_record(*, owner: str, outcomes: dict[OutboxMessage, Outcome], now: datetime | None = None) -> int:
    """Store outcomes in one transaction, with the transmission's audit event. Returns rows updated.

    Outcomes that write the same fields (a batch of acknowledgements, mostly) share one UPDATE, still only on rows
    whose lease this worker holds; ``attempts`` is incremented in SQL (the lease holder alone writes it)."""
    now = now or timezone.now()
    updated = 0
    groups: dict[tuple[tuple[str, object], ...], list[OutboxMessage]] = {}
    transmitted_ids = []
    for message, outcome in outcomes.items():
        fields: dict[str, object] = {"destination": message.destination, "message_format": message.message_format}  # as sent
        if outcome.transmitted:
            fields["sent_at"] = now
            transmitted_ids.append(message.screening_id)
        if outcome.kind == "acknowledged":
            fields.update(status=TransferStatus.ACKNOWLEDGED, acknowledged_at=now, ack_code=outcome.ack_code, ack_text=outcome.detail[:500])
            fields["last_error"] = ""
        elif outcome.kind == "rejected":
            fields.update(status=TransferStatus.REJECTED, rejected_at=now, rejection_reason=outcome.detail[:500] or "rejected")
            fields["ack_code"] = outcome.ack_code
        else:
            delay = backoff_seconds(message.attempts + 1, retry_after=outcome.retry_after)
            fields.update(
                status=TransferStatus.SENT if outcome.transmitted or message.status == TransferStatus.SENT else TransferStatus.PENDING,
                next_attempt_at=now + timedelta(seconds=delay),
                last_error=outcome.detail[:500],
            )
        groups.setdefault(tuple(fields.items()), []).append(message)
    with transaction.atomic():
        for key, messages in groups.items():
            held = QUEUE.rows.filter(pk__in=[m.pk for m in messages], lease_owner=owner)
            updated += held.update(lease_owner="", lease_until=None, attempts=F("attempts") + 1, **dict(key))
        # Same transaction: a client is notified if and only if the outcome was recorded.
        outcomes_settled(messages=[m for m, o in outcomes.items() if o.kind != "transient"], now=now)
        if transmitted_ids:
            audit_record(
                actor=None,
                action="screening.transmit",
                object_type="screening",
                object_ids=transmitted_ids,
                detail={"destination": next(iter(outcomes)).destination, "messages": [m.message_id for m in outcomes]},
            )
    return updated


def outbox_record_error(*, owner: str, message: OutboxMessage, error: str, now: datetime | None = None) -> bool:
    """An unexpected error while rendering or sending (a decryption error, a bug): retried with backoff, parked as
    rejected at the fifth (operators see it with the other rejections and resend it once the cause is fixed)."""
    now = now or timezone.now()
    with transaction.atomic():
        parked = QUEUE.record_error(
            owner=owner,
            row=message,
            error=error,
            backoff=backoff_seconds,
            parked={"status": TransferStatus.REJECTED, "rejected_at": now, "rejection_reason": f"gave up after errors: {error}"[:500]},
            now=now,
        )
        if parked:
            outcomes_settled(messages=[message], now=now)  # the pharmacy's software hears of it like any rejection
    return parked


def _requeue(message: OutboxMessage) -> None:
    """Rejected -> pending, same message id; or superseded when a later version already went (or is going) out,
    because the receiver must never get an older version after a newer one."""
    later_live = OutboxMessage.objects.filter(series_id=message.series_id, version__gt=message.version).exclude(
        status=TransferStatus.REJECTED
    )
    message.status = TransferStatus.SUPERSEDED if later_live.exists() else TransferStatus.PENDING
    message.next_attempt_at = timezone.now()
    message.rejection_reason = "" if message.status == TransferStatus.PENDING else message.rejection_reason
    message.save(update_fields=["status", "next_attempt_at", "rejection_reason"])


def outbox_resend_all(*, reason_contains: str = "") -> int:
    """Operator command: requeue every rejected message (optionally those whose reason contains a text)."""
    with transaction.atomic():
        query = OutboxMessage.objects.select_for_update().filter(status=TransferStatus.REJECTED).order_by("series_id", "version")
        if reason_contains:
            query = query.filter(rejection_reason__icontains=reason_contains)
        messages = list(query)
        for message in messages:
            _requeue(message)
        if messages:
            audit_record(actor=None, action="transfer.resend", object_type="outbox", object_ids=[m.pk for m in messages])
    return len(messages)


def outbox_resend(*, actor: User, message_id: uuid.UUID | str) -> OutboxMessage:
    """Put a rejected message back in the queue (after the cause was fixed). Same message id."""
    with transaction.atomic():
        query = OutboxMessage.objects.select_for_update()
        if actor.role != Role.PLATFORM_OPERATOR:
            if not actor.sees_patients:
                raise PermissionDenied
            query = query.filter(pharmacy_id=actor.tenant_id)
        message = query.get(pk=message_id)
        if message.status != TransferStatus.REJECTED:
            return message
        _requeue(message)
        audit_record(
            actor=actor,
            action="transfer.resend",
            object_type="outbox",
            object_ids=[message.pk, message.screening_id],
            pharmacy_id=message.pharmacy_id,
        )
    return message
