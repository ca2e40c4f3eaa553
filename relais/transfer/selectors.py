"""Queue figures for the operator console: no patient data, only ids, pharmacies and reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.utils import timezone

from relais.transfer.models import OPEN_STATUSES, OutboxMessage, TransferStatus


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
