"""Health of every background queue, in a few indexed queries each: for doctor, readiness and /metrics.

Per queue: ``depth`` (open rows: still to do, leased or not), ``oldest_age_seconds`` (age of the oldest open row since it
was written), ``overdue_seconds`` (how long the oldest row that is due and not leased has waited past its due time: a
queue no worker takes from), ``parked`` (rows given up: failed, or parked after repeated errors; they stay until the
retention purge) and ``in_flight`` (open rows under a live lease).

Indexes used: (status, next_attempt_at) on outbox, notifications, webhook deliveries and breach letters, (status,
created_at) on submissions; the open set is small when the workers keep up, so reading created_at from its rows is
cheap. The parked counts read the same (status, ...) indexes. Scheduled jobs hold one row per job; the audit sealing
lag comes from relais.audit.seal.seal_status (bounded counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from relais.audit.seal import seal_status
from relais.breach.models import BreachLetter, LetterStatus
from relais.core import queue as core_queue
from relais.core.models import ScheduledJob
from relais.notify.models import Notification, NotificationStatus
from relais.submissions.models import Submission, SubmissionStatus
from relais.transfer.models import OPEN_STATUSES, OutboxMessage, TransferStatus
from relais.webhooks.models import DeliveryStatus, WebhookDelivery

QUEUE_NAMES = ("transfer", "notifications", "webhooks", "submissions", "breach_letters", "audit_seal", "scheduled_jobs")


@dataclass(frozen=True)
class QueueHealth:
    name: str
    depth: int
    oldest_age_seconds: float | None  # None: nothing open
    overdue_seconds: float | None  # None: nothing due and unleased
    parked: int
    in_flight: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Seconds (ages) and counts beyond which doctor warns or fails; None: never."""

    age_warn: float | None
    age_fail: float | None
    overdue_warn: float | None = 120
    overdue_fail: float | None = 900  # no worker has taken a due row for 15 minutes: readiness fails too
    parked_warn: int | None = 1
    parked_fail: int | None = None


# Why these: a result must reach SI-DEP within the day (fail after 6 h open, warn after 30 min); patient messages and
# webhooks retry for hours by design (warn only after 2 h, fail after a day); a CSV file is recorded within minutes;
# breach letters are sent within hours of approval; the audit sealer checkpoints every 60 s and alarms after 5 min.
DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "transfer": Thresholds(age_warn=30 * 60, age_fail=6 * 3600),
    "notifications": Thresholds(age_warn=2 * 3600, age_fail=24 * 3600),
    "webhooks": Thresholds(age_warn=2 * 3600, age_fail=48 * 3600),
    "submissions": Thresholds(age_warn=15 * 60, age_fail=2 * 3600),
    "breach_letters": Thresholds(age_warn=6 * 3600, age_fail=72 * 3600),
    "audit_seal": Thresholds(age_warn=300, age_fail=3600, overdue_warn=300, overdue_fail=3600, parked_warn=None),
    "scheduled_jobs": Thresholds(age_warn=None, age_fail=None, overdue_warn=900, overdue_fail=3 * 3600),
}


def thresholds(name: str) -> Thresholds:
    """DEFAULT_THRESHOLDS, overridden field by field by settings.RELAIS_QUEUE_THRESHOLDS = {name: {field: value}}."""
    base = DEFAULT_THRESHOLDS[name]
    override = getattr(settings, "RELAIS_QUEUE_THRESHOLDS", {}).get(name, {})
    return Thresholds(**{**asdict(base), **override}) if override else base


def _seconds(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def _leased_queue(
    name: str,
    model: type[models.Model],
    *,
    open_q: Q,
    parked_q: Q,
    now: datetime,
    due_since: Any = None,
    entered: str = "created_at",
) -> QueueHealth:
    """One aggregate over the open rows (depth, oldest, in flight, oldest due unleased) and one count of parked rows."""
    rows = model._default_manager.all()
    due = (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)) & (Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    since = due_since if due_since is not None else Coalesce("next_attempt_at", "created_at")
    figures = rows.filter(open_q).aggregate(
        depth=Count("pk"),
        oldest=Min(entered),
        in_flight=Count("pk", filter=Q(lease_until__gte=now)),
        due_since=Min(since, filter=due),
    )
    return QueueHealth(
        name=name,
        depth=figures["depth"],
        oldest_age_seconds=_seconds(now, figures["oldest"]),
        overdue_seconds=_seconds(now, figures["due_since"]),
        parked=rows.filter(parked_q).count(),
        in_flight=figures["in_flight"],
    )


def _transfer(now: datetime) -> QueueHealth:
    # Rejections by the platform are outcomes, not parked rows: parked are those the worker gave up on after errors.
    parked = Q(status=TransferStatus.REJECTED, error_count__gte=core_queue.MAX_ERRORS)
    return _leased_queue("transfer", OutboxMessage, open_q=Q(status__in=OPEN_STATUSES), parked_q=parked, now=now)


def _notifications(now: datetime) -> QueueHealth:
    open_q = Q(status=NotificationStatus.PENDING)
    return _leased_queue("notifications", Notification, open_q=open_q, parked_q=Q(status=NotificationStatus.FAILED), now=now)


def _webhooks(now: datetime) -> QueueHealth:
    open_q = Q(status=DeliveryStatus.PENDING)
    return _leased_queue("webhooks", WebhookDelivery, open_q=open_q, parked_q=Q(status=DeliveryStatus.FAILED), now=now)


def _submissions(now: datetime) -> QueueHealth:
    open_q = Q(status__in=[SubmissionStatus.QUEUED, SubmissionStatus.PROCESSING])
    return _leased_queue("submissions", Submission, open_q=open_q, parked_q=Q(status=SubmissionStatus.FAILED), now=now)


def _breach_letters(now: datetime) -> QueueHealth:
    # A letter enters the queue when someone asks for it to be sent, not when drafted: its age counts from then.
    open_q = Q(status=LetterStatus.APPROVED, send_requested_at__isnull=False)
    return _leased_queue(
        "breach_letters",
        BreachLetter,
        open_q=open_q,
        parked_q=Q(status=LetterStatus.FAILED),
        now=now,
        due_since=Coalesce("next_attempt_at", "send_requested_at"),
        entered="send_requested_at",
    )


def _scheduled_jobs(now: datetime) -> QueueHealth:
    """Depth: jobs due now; overdue: how late the latest-running one is; parked: jobs whose last run failed."""
    from relais.core.schedule import jobs  # registered names only: a job removed from the code leaves a stale row

    names = list(jobs())
    rows = ScheduledJob.objects.filter(name__in=names)
    due = (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)) & (Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    figures = rows.aggregate(
        depth=Count("pk", filter=due),
        due_since=Min(Coalesce("next_attempt_at", "created_at"), filter=due),
        in_flight=Count("pk", filter=Q(lease_until__gte=now)),
        parked=Count("pk", filter=Q(error_count__gt=0)),
    )
    return QueueHealth(
        name="scheduled_jobs",
        depth=figures["depth"],
        oldest_age_seconds=None,
        overdue_seconds=_seconds(now, figures["due_since"]),
        parked=figures["parked"],
        in_flight=figures["in_flight"],
    )


def _audit_seal(now: datetime) -> QueueHealth:
    status = seal_status(now=now)
    age = _seconds(now, status.oldest_unsealed_at)
    return QueueHealth(name="audit_seal", depth=status.unsealed_events, oldest_age_seconds=age, overdue_seconds=age, parked=0, in_flight=0)


_READERS: dict[str, Callable[[datetime], QueueHealth]] = {
    "transfer": _transfer,
    "notifications": _notifications,
    "webhooks": _webhooks,
    "submissions": _submissions,
    "breach_letters": _breach_letters,
    "audit_seal": _audit_seal,
    "scheduled_jobs": _scheduled_jobs,
}


def queue_health(*, now: datetime | None = None, names: tuple[str, ...] = QUEUE_NAMES) -> list[QueueHealth]:
    """The health of each queue named (all by default), in QUEUE_NAMES order."""
    now = now or timezone.now()
    return [_READERS[name](now) for name in QUEUE_NAMES if name in names]


def _level(value: float | None, warn: float | None, fail: float | None) -> str:
    if value is None:
        return "pass"
    if fail is not None and value >= fail:
        return "fail"
    if warn is not None and value >= warn:
        return "warn"
    return "pass"


def assess(health: QueueHealth) -> tuple[str, list[str]]:
    """("pass" | "warn" | "fail", the figures beyond a threshold) for one queue, by thresholds(name)."""
    limits = thresholds(health.name)
    levels = {
        "oldest_age_seconds": _level(health.oldest_age_seconds, limits.age_warn, limits.age_fail),
        "overdue_seconds": _level(health.overdue_seconds, limits.overdue_warn, limits.overdue_fail),
        "parked": _level(health.parked, limits.parked_warn, limits.parked_fail),
    }
    worst = "fail" if "fail" in levels.values() else "warn" if "warn" in levels.values() else "pass"
    return worst, [field for field, level in levels.items() if level != "pass"]


def stalled(health: QueueHealth) -> bool:
    """For readiness: due rows nobody takes for longer than the fail threshold (the workers are down or stuck)."""
    limit = thresholds(health.name).overdue_fail
    return limit is not None and health.overdue_seconds is not None and health.overdue_seconds >= limit
