"""Queue figures for the operator console and the outage banner: no patient data, only ids, pharmacies and reasons."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.utils import timezone

from relais.transfer.models import OPEN_STATUSES, DestinationHealth, OutboxMessage, TransferStatus


@dataclass(frozen=True)
class QueueSummary:
    depth: int
    pending: int
    sent: int
    oldest_open_age: timedelta | None
    acknowledged_last_hour: int
    rejected_total: int
    rejections_by_reason: list[tuple[str, int]]
    per_minute: list[int]  # acknowledged per minute over the last hour, oldest first


def queue_summary(*, now: datetime | None = None) -> QueueSummary:
    now = now or timezone.now()
    counts = dict(
        OutboxMessage.objects.filter(status__in=OPEN_STATUSES).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    oldest = OutboxMessage.objects.filter(status__in=OPEN_STATUSES).aggregate(oldest=Min("created_at"))["oldest"]
    hour_ago = now - timedelta(hours=1)
    per_minute = [0] * 60
    for acknowledged_at in OutboxMessage.objects.filter(acknowledged_at__gte=hour_ago).values_list("acknowledged_at", flat=True).iterator():
        if acknowledged_at is None:
            continue
        index = min(59, int((acknowledged_at - hour_ago).total_seconds() // 60))
        per_minute[index] += 1
    reasons = list(
        OutboxMessage.objects.filter(status=TransferStatus.REJECTED)
        .values_list("rejection_reason")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("rejection_reason", "n")[:10]
    )
    return QueueSummary(
        depth=sum(counts.values()),
        pending=counts.get(TransferStatus.PENDING, 0),
        sent=counts.get(TransferStatus.SENT, 0),
        oldest_open_age=(now - oldest) if oldest else None,
        acknowledged_last_hour=sum(per_minute),
        rejected_total=sum(n for _r, n in reasons),
        rejections_by_reason=reasons,
        per_minute=per_minute,
    )


def rejected_messages(*, limit: int = 50) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(status=TransferStatus.REJECTED).select_related("pharmacy").order_by("-rejected_at")[:limit])


def stuck_messages(*, limit: int = 20) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(status__in=OPEN_STATUSES).select_related("pharmacy").order_by("created_at")[:limit])


@dataclass(frozen=True)
class Outage:
    """The destination in force has been failing to connect since ``since``, with no answer from it after."""

    destination: str
    since: datetime
    waiting: int  # open messages (of the pharmacy, for a pharmacy's page)
    last_error: str  # the transport's text, for operators


def destination_outage(*, destination: str, pharmacy_id: uuid.UUID | None = None) -> Outage | None:
    """None while the destination answers: one query by primary key. While it fails, one count of the waiting."""
    health = (
        DestinationHealth.objects.filter(name=destination, failing_since__isnull=False).values_list("failing_since", "last_error").first()
    )
    if health is None or health[0] is None:
        return None
    waiting = OutboxMessage.objects.filter(status__in=OPEN_STATUSES)
    if pharmacy_id is not None:
        waiting = waiting.filter(pharmacy_id=pharmacy_id)
    return Outage(destination=destination, since=health[0], waiting=waiting.count(), last_error=health[1])


@dataclass(frozen=True)
class ReasonGroup:
    destination: str
    reason: str
    count: int


def refused_by_reason(*, limit: int = 30) -> list[ReasonGroup]:
    """Refused and parked messages grouped by destination and exact reason, the largest groups first."""
    rows = (
        OutboxMessage.objects.filter(status=TransferStatus.REJECTED)
        .values_list("destination", "rejection_reason")
        .annotate(n=Count("id"))
        .order_by("-n", "destination", "rejection_reason")
        .values_list("destination", "rejection_reason", "n")[:limit]
    )
    return [ReasonGroup(d, r, n) for d, r, n in rows]


def refused_by_destination() -> list[tuple[str, int]]:
    rows = (
        OutboxMessage.objects.filter(status=TransferStatus.REJECTED)
        .values_list("destination")
        .annotate(n=Count("id"))
        .order_by("destination")
    )
    return list(rows.values_list("destination", "n"))
