"""The transactional outbox: enqueue with the screening, claim with a lease, record what happened."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from relais.accounts.models import Role, User
from relais.audit.services import audit_record
from relais.core import queue
from relais.screenings.models import Screening
from relais.transfer.hooks import outcomes_settled
from relais.transfer.models import OPEN_STATUSES, DestinationHealth, OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome
from relais.transfer.plain import is_outage, kind_of


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
        _record_health(outcomes, now)
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


def _record_health(outcomes: dict[OutboxMessage, Outcome], now: datetime) -> None:
    """Keep DestinationHealth in step: an answer from the receiver (an acknowledgement or a refusal it sent) clears
    "failing since", a connection failure sets it if it was clear. Writes only on a change of state: a healthy
    destination costs one UPDATE matching no row per batch."""
    by_destination: dict[str, tuple[bool, str]] = {}
    for message, outcome in outcomes.items():
        answered, failure = by_destination.get(message.destination, (False, ""))
        if outcome.transmitted and outcome.kind in ("acknowledged", "rejected"):  # not a removal settled unsent
            answered = True
        elif outcome.kind == "transient" and not failure and is_outage(outcome.detail):
            failure = outcome.detail
        by_destination[message.destination] = (answered, failure)
    for name, (answered, failure) in by_destination.items():
        if not name:
            continue
        if answered:
            DestinationHealth.objects.filter(name=name, failing_since__isnull=False).update(failing_since=None)
        elif failure:
            health, created = DestinationHealth.objects.get_or_create(
                name=name, defaults={"failing_since": now, "last_error": failure[:500]}
            )
            if not created and health.failing_since is None:
                DestinationHealth.objects.filter(name=name, failing_since__isnull=True).update(failing_since=now, last_error=failure[:500])


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
    """Operator command: requeue every rejected message (optionally those whose reason contains a text), in bulk."""
    with transaction.atomic():
        query = OutboxMessage.objects.select_for_update().filter(status=TransferStatus.REJECTED)
        if reason_contains:
            query = query.filter(rejection_reason__icontains=reason_contains)
        found, _superseded, _requeued = _requeue_bulk(query, timezone.now())
        if found:
            audit_record(actor=None, action="transfer.resend", object_type="outbox", object_ids=[pk for pk, _screening in found])
    return len(found)


def _requeue_bulk(rows: QuerySet[OutboxMessage], now: datetime) -> tuple[list[tuple[uuid.UUID, uuid.UUID]], int, int]:
    """_requeue for many rows: one SELECT of their ids, one UPDATE for those a later live version supersedes, one for
    the rest (back to pending, reason cleared). Order-independent: a row turns superseded only when a later version is
    live, which holds for its earlier versions too. Returns ((id, screening id) of each row, superseded, requeued)."""
    found = list(rows.values_list("pk", "screening_id"))
    if not found:
        return [], 0, 0
    chosen = OutboxMessage.objects.filter(pk__in=[pk for pk, _screening in found], status=TransferStatus.REJECTED)
    later_live = Exists(
        OutboxMessage.objects.filter(series_id=OuterRef("series_id"), version__gt=OuterRef("version")).exclude(
            status=TransferStatus.REJECTED
        )
    )
    superseded = chosen.filter(later_live).update(status=TransferStatus.SUPERSEDED, next_attempt_at=now)
    requeued = chosen.update(status=TransferStatus.PENDING, next_attempt_at=now, rejection_reason="")
    return found, superseded, requeued


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


def outbox_resend_batch(*, actor: User, destination: str, reason: str | None = None, now: datetime | None = None) -> int:
    """Operator action: put back in the queue every refused or parked message of ``destination`` (all of them, or
    those refused for exactly ``reason``). Same rules as outbox_resend (superseded when a later version is live), in
    bulk: one SELECT of the ids, one UPDATE for the superseded, one for the rest, one audit event naming the count.
    Returns how many messages were requeued (superseded ones included)."""
    if actor.role != Role.PLATFORM_OPERATOR:
        raise PermissionDenied
    now = now or timezone.now()
    with transaction.atomic():
        rows = OutboxMessage.objects.select_for_update().filter(status=TransferStatus.REJECTED, destination=destination)
        if reason is not None:
            rows = rows.filter(rejection_reason=reason)
        found, superseded, requeued = _requeue_bulk(rows, now)
        if not found:
            return 0
        ids = [pk for pk, _screening in found]
        audit_record(
            actor=actor,
            action="transfer.resend_batch",
            object_type="outbox",
            object_ids=[*ids, *(screening for _pk, screening in found)],
            detail={
                "count": len(ids),
                "requeued": requeued,
                "superseded": superseded,
                "destination": destination,
                "reason_kind": "all" if reason is None else kind_of(reason, refused=True).code,
            },
        )
    return len(ids)
