"""The day's figures for one pharmacy: counts only, no personal data, three aggregate queries on indexed ranges and the
test queue's open rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from relais.accounts.models import User
from relais.core.tenancy import for_actor
from relais.notify.models import Notification, NotificationStatus
from relais.screenings.models import Screening, ScreeningResult, ScreeningStatus
from relais.screenings.vocab import RESULT_DETECTED
from relais.testqueue.services import queue_counts
from relais.transfer.models import DestinationHealth, OutboxMessage, TransferStatus

CHART_DAYS = 14


@dataclass(frozen=True)
class Day:
    day: date
    tests: int
    positives: int

    @property
    def others(self) -> int:
        return self.tests - self.positives


@dataclass(frozen=True)
class Figures:
    tests: int
    positives: int
    rejections: int
    failed_messages: int
    in_progress: int = 0  # today only: tests in the queue waiting for their result
    overdue: int = 0  # ... of which left past their reading time plus RELAIS_QUEUE_OVERDUE_MINUTES


@dataclass(frozen=True)
class DayFigures:
    today: Figures
    week: Figures
    week_start: date
    days: list[Day]  # the last CHART_DAYS days, oldest first, today last


def start_of(day: date) -> datetime:
    """Local midnight opening ``day``, as an aware datetime."""
    return timezone.make_aware(datetime.combine(day, time.min))


def counted_tests(actor: User, *, patient_data: bool = False) -> QuerySet[Screening]:
    """The pharmacy's tests as the day counts them: the current version of each, removed ones left out."""
    return for_actor(Screening, actor, patient_data=patient_data).filter(is_current=True).exclude(status=ScreeningStatus.REMOVED)


def day_figures(*, actor: User, now: datetime | None = None) -> DayFigures:
    """Today's and this week's (since Monday) counts and the tests per day of the last CHART_DAYS days.

    A test counts on the day it was recorded (as the today list); a rejection or a failed patient message on the day it
    happened, while it is still rejected or failed: once resent it is no longer the pharmacy's to act on. Reading those by
    status walks the queues' (status, next_attempt_at) indexes over the few such rows, not the pharmacy's whole history."""
    today = timezone.localdate(now or timezone.now())
    week_start = today - timedelta(days=today.weekday())
    first_day = min(week_start, today - timedelta(days=CHART_DAYS - 1))
    since, today_start = start_of(first_day), start_of(today)
    week_since = start_of(week_start)

    positive = ScreeningResult.objects.filter(screening=OuterRef("pk"), result=RESULT_DETECTED)
    per_day = {
        row["day"]: row
        for row in counted_tests(actor)
        .filter(recorded_at__gte=since)
        .annotate(day=TruncDate("recorded_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(tests=Count("pk"), positives=Count("pk", filter=Exists(positive)))
        .order_by()
    }
    rejections = (
        for_actor(OutboxMessage, actor, patient_data=False)
        .filter(status=TransferStatus.REJECTED, rejected_at__gte=week_since)
        .aggregate(week=Count("pk"), today=Count("pk", filter=Q(rejected_at__gte=today_start)))
    )
    failures = (
        for_actor(Notification, actor, patient_data=False)
        .filter(status=NotificationStatus.FAILED, failed_at__gte=week_since)
        .aggregate(week=Count("pk"), today=Count("pk", filter=Q(failed_at__gte=today_start)))
    )

    queue = queue_counts(actor=actor, now=now)

    def day(d: date) -> Day:
        row = per_day.get(d)
        return Day(d, row["tests"], row["positives"]) if row else Day(d, 0, 0)

    week_days = [day(week_start + timedelta(days=i)) for i in range((today - week_start).days + 1)]
    return DayFigures(
        today=Figures(day(today).tests, day(today).positives, rejections["today"], failures["today"], queue.in_progress, queue.overdue),
        week=Figures(sum(d.tests for d in week_days), sum(d.positives for d in week_days), rejections["week"], failures["week"]),
        week_start=week_start,
        days=[day(today - timedelta(days=i)) for i in range(CHART_DAYS - 1, -1, -1)],
    )


def today_list_version(*, actor: User, now: datetime | None = None) -> str:
    """A fingerprint of what the today list shows (tests, their versions and statuses, transmission and message
    statuses, the platform's outage), from ids and status columns only: the page's refresh compares it and reads names
    (audited) only on a change."""
    start = start_of(timezone.localdate(now or timezone.now()))
    tests = for_actor(Screening, actor, patient_data=False).filter(is_current=True, recorded_at__gte=start)
    shown = sorted(f"{pk}:{status}" for pk, status in tests.values_list("pk", "status"))
    listed = tests.values("pk")
    outbox = sorted(f"{s}:{st}" for s, st in OutboxMessage.objects.filter(screening__in=listed).values_list("screening_id", "status"))
    messages = sorted(f"{s}:{st}" for s, st in Notification.objects.filter(screening__in=listed).values_list("screening_id", "status"))
    # The outage banner is part of the list: a platform going down or coming back refreshes it too.
    failing = DestinationHealth.objects.filter(failing_since__isnull=False)
    outages = sorted(f"{n}:{t}" for n, t in failing.values_list("name", "failing_since"))
    digest = hashlib.sha256("|".join([*shown, "#", *outbox, "#", *messages, "#", *outages]).encode())
    return digest.hexdigest()[:20]
