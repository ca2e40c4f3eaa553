"""Queue figures for operators: counts and reasons only, never an address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.utils import timezone

from relais.notify.models import Notification, NotificationStatus


@dataclass(frozen=True)
class NotifySummary:
    waiting: int
    oldest_waiting_age: timedelta | None
    sent_last_hour: int
    failed_last_day: int
    failures_by_reason: list[tuple[str, int]]


def notify_summary(*, now: datetime | None = None) -> NotifySummary:
    now = now or timezone.now()
    waiting = Notification.objects.filter(status=NotificationStatus.PENDING)
    oldest = waiting.aggregate(oldest=Min("created_at"))["oldest"]
    failed = Notification.objects.filter(status=NotificationStatus.FAILED, failed_at__gte=now - timedelta(days=1))
    reasons = failed.values("last_error").annotate(n=Count("id")).order_by("-n")[:10]
    return NotifySummary(
        waiting=waiting.count(),
        oldest_waiting_age=now - oldest if oldest else None,
        sent_last_hour=Notification.objects.filter(status=NotificationStatus.SENT, sent_at__gte=now - timedelta(hours=1)).count(),
        failed_last_day=failed.count(),
        failures_by_reason=[(r["last_error"] or "?", r["n"]) for r in reasons],
    )
