"""Figures read from the database at each scrape: queues, delivery latency, rejections, failed messages, audit sealing.

Computed from the tables, not counted in the processes that do the work: the web server's processes and the workers
share nothing but the database, so any one of them answers for all. Each section is a few indexed queries, bounded
(the delivery histogram reads at most DELIVERY_SAMPLE rows); a section whose query fails is reported in
relais_metrics_section_errors instead of failing the whole scrape.

Reasons are coarse categories computed from the stored outcome (acknowledgement code, the fixed start of our own
texts), never the stored text, which quotes a receiver or a provider and could carry identity."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Case, CharField, Count, Q, Value, When
from django.utils import timezone
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relais.audit.models import AuditCheckpoint
from relais.audit.seal import seal_status
from relais.core.queue import MAX_ERRORS
from relais.notify.models import Notification, NotificationStatus
from relais.notify.services import IN_DOUBT
from relais.ops.queues import QueueHealth, queue_health
from relais.transfer.models import OutboxMessage, TransferStatus

log = logging.getLogger(__name__)

DELIVERY_WINDOW = timedelta(minutes=15)
DELIVERY_SAMPLE = 10_000  # the most recent acknowledgements in the window, at most: the scrape stays cheap at any rate
DELIVERY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 6 * 3600.0, 24 * 3600.0)
NOTIFICATION_WINDOW = timedelta(days=1)

# Transfer rejections: (category, condition), first match wins; "other" for the rest.
REJECTION_CATEGORIES: tuple[tuple[str, Q], ...] = (
    ("gave_up_after_errors", Q(error_count__gte=MAX_ERRORS, rejection_reason__startswith="gave up after errors")),
    ("not_codable", Q(rejection_reason__startswith="a value cannot be coded")),
    ("failed_validation", Q(rejection_reason__startswith="the message failed validation")),
    ("receiver_ar", Q(ack_code="AR")),  # HL7 application reject
    ("receiver_ae", Q(ack_code="AE")),  # HL7 application error
    ("receiver_cr", Q(ack_code="CR")),
    ("receiver_ce", Q(ack_code="CE")),
    ("receiver_http_4xx", Q(ack_code__regex=r"^4[0-9][0-9]$")),
    ("receiver_http_5xx", Q(ack_code__regex=r"^5[0-9][0-9]$")),
)
# Patient messages that failed (relais/notify/channels.py and services.py write these texts).
NOTIFICATION_CATEGORIES: tuple[tuple[str, Q], ...] = (
    ("in_doubt", Q(last_error=IN_DOUBT)),
    ("sms_gateway_busy", Q(last_error__startswith="SMS gateway answered 429") | Q(last_error__regex=r"^SMS gateway answered 5")),
    ("sms_gateway_refused", Q(last_error__startswith="SMS gateway answered")),
    ("sms_gateway_unreachable", Q(last_error__startswith="SMS gateway unreachable")),
    ("mail_address_refused", Q(last_error__startswith="mail server refused the address")),
    ("mail_address_deferred", Q(last_error__startswith="mail server deferred the address")),
    ("mail_server_refused", Q(last_error__startswith="mail server answered 5")),
    ("mail_server_deferred", Q(last_error__startswith="mail server answered")),
    ("mail_server_unreachable", Q(last_error__startswith="mail server unreachable")),
    ("unexpected_error", Q(last_error__startswith="unexpected error") | Q(last_error__contains=": unexpected error, see the worker log")),
    ("none_recorded", Q(last_error="")),
)


def _category(categories: tuple[tuple[str, Q], ...]) -> Case:
    return Case(*(When(condition, then=Value(name)) for name, condition in categories), default=Value("other"), output_field=CharField())


def rejections_by_category() -> dict[str, int]:
    """Transfers rejected and not resent yet, by category."""
    rows = (
        OutboxMessage.objects.filter(status=TransferStatus.REJECTED)
        .annotate(category=_category(REJECTION_CATEGORIES))
        .values_list("category")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {category: n for category, n in rows}


def notification_failures(*, now: datetime) -> dict[tuple[str, str], int]:
    """Patient messages that failed within NOTIFICATION_WINDOW, by (channel, category)."""
    rows = (
        Notification.objects.filter(status=NotificationStatus.FAILED, failed_at__gte=now - NOTIFICATION_WINDOW)
        .annotate(category=_category(NOTIFICATION_CATEGORIES))
        .values_list("channel", "category")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {(channel, category): n for channel, category, n in rows}


def _latency_sql() -> str:
    table = OutboxMessage._meta.db_table
    if connection.vendor == "postgresql":
        seconds = "EXTRACT(EPOCH FROM (acknowledged_at - created_at))"
    else:
        seconds = "(julianday(acknowledged_at) - julianday(created_at)) * 86400.0"
    buckets = ", ".join(f"SUM(CASE WHEN d <= {bound!r} THEN 1 ELSE 0 END)" for bound in DELIVERY_BUCKETS)
    return (
        f"SELECT COUNT(*), COALESCE(SUM(d), 0), {buckets} FROM ("  # noqa: S608 - names and numbers from this module
        f"SELECT {seconds} AS d FROM {table} WHERE acknowledged_at >= %s ORDER BY acknowledged_at DESC LIMIT %s) AS recent"
    )


def delivery_latency(*, now: datetime) -> tuple[int, float, list[int]]:
    """(count, sum of seconds, cumulative count per DELIVERY_BUCKETS bound) from recording to acknowledgement, over the
    most recent DELIVERY_SAMPLE acknowledgements of the last DELIVERY_WINDOW (index on acknowledged_at)."""
    since = connection.ops.adapt_datetimefield_value(now - DELIVERY_WINDOW)
    with connection.cursor() as cursor:
        cursor.execute(_latency_sql(), [since, DELIVERY_SAMPLE])
        row = cursor.fetchone()
    return int(row[0]), float(row[1] or 0), [int(v or 0) for v in row[2:]]


class DatabaseCollector(Collector):
    """Registered in the registry built for one scrape: queries run when the scrape collects, never at import."""

    def __init__(self, *, now: Callable[[], datetime] = timezone.now) -> None:
        self.now = now
        self._audit_queue: QueueHealth | None = None

    def describe(self) -> list[Metric]:
        return []  # nothing to read when registered

    def collect(self) -> Iterator[Metric]:
        now = self.now()
        self._audit_queue = None
        errors = GaugeMetricFamily(
            "relais_metrics_section_errors", "1 when this section of the scrape could not be read", labels=["section"]
        )
        seconds = GaugeMetricFamily("relais_metrics_section_seconds", "Time this section of the scrape took to read", labels=["section"])
        for name, section in (
            ("queues", self._queues),
            ("delivery", self._delivery),
            ("rejections", self._rejections),
            ("notifications", self._notifications),
            ("audit", self._audit),
        ):
            started = time.perf_counter()
            try:
                yield from list(section(now))
                errors.add_metric([name], 0)
            except Exception:  # one broken section leaves the others readable
                log.exception("metrics: the %s section failed", name)
                errors.add_metric([name], 1)
            seconds.add_metric([name], time.perf_counter() - started)
        yield errors
        yield seconds

    def _queues(self, now: datetime) -> Iterator[Metric]:
        families = {
            "depth": GaugeMetricFamily("relais_queue_depth", "Open rows (to do, leased or not) per queue", labels=["queue"]),
            "oldest_age_seconds": GaugeMetricFamily(
                "relais_queue_oldest_age_seconds", "Age of the oldest open row per queue (0 when none)", labels=["queue"]
            ),
            "overdue_seconds": GaugeMetricFamily(
                "relais_queue_overdue_seconds",
                "How long the oldest due, unleased row has waited past its time (0 when none)",
                labels=["queue"],
            ),
            "parked": GaugeMetricFamily(
                "relais_queue_parked", "Rows given up (failed, or parked after repeated errors) per queue", labels=["queue"]
            ),
            "in_flight": GaugeMetricFamily("relais_queue_in_flight", "Open rows under a live lease per queue", labels=["queue"]),
        }
        for health in queue_health(now=now):
            if health.name == "audit_seal":
                self._audit_queue = health
            for field, family in families.items():
                family.add_metric([health.name], float(getattr(health, field, 0) or 0))
        yield from families.values()

    def _delivery(self, now: datetime) -> Iterator[Metric]:
        count, total, cumulative = delivery_latency(now=now)
        family = GaugeHistogramMetricFamily(
            "relais_transfer_delivery_seconds",
            f"Seconds from recording a test to the national platform's acknowledgement, over the last"
            f" {int(DELIVERY_WINDOW.total_seconds() // 60)} minutes' acknowledgements (at most {DELIVERY_SAMPLE} latest)",
        )
        buckets = [(repr(bound), float(n)) for bound, n in zip(DELIVERY_BUCKETS, cumulative, strict=True)] + [("+Inf", float(count))]
        family.add_metric([], buckets, gsum_value=total)
        yield family

    def _rejections(self, now: datetime) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "relais_transfer_rejected",
            "Transfers rejected and not resent, by reason category (never the receiver's text)",
            labels=["reason"],
        )
        for category, n in sorted(rejections_by_category().items()):
            family.add_metric([category], n)
        yield family

    def _notifications(self, now: datetime) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "relais_notification_failures",
            "Patient messages that failed in the last 24 hours, by channel and reason category",
            labels=["channel", "reason"],
        )
        for (channel, category), n in sorted(notification_failures(now=now).items()):
            family.add_metric([channel, category], n)
        yield family

    def _audit(self, now: datetime) -> Iterator[Metric]:
        # The queues section read the seal status already (queue "audit_seal"): read it again only if that failed.
        if self._audit_queue is not None:
            unsealed, age = self._audit_queue.depth, self._audit_queue.oldest_age_seconds or 0.0
        else:
            status = seal_status(now=now)
            unsealed = status.unsealed_events
            age = max(0.0, (now - status.oldest_unsealed_at).total_seconds()) if status.oldest_unsealed_at else 0.0
        lag = GaugeMetricFamily("relais_audit_seal_lag_seconds", "Age of the oldest committed audit event not sealed yet (0 when none)")
        lag.add_metric([], age)
        yield lag
        count = GaugeMetricFamily("relais_audit_unsealed_events", "Committed audit events not sealed yet (counted up to 10,000)")
        count.add_metric([], unsealed)
        yield count
        last = AuditCheckpoint.objects.order_by("-seq_last").values_list("created_at", flat=True).first()
        family = GaugeMetricFamily(
            "relais_audit_last_checkpoint_age_seconds", "Age of the last signed audit checkpoint (absent when none was ever signed)"
        )
        if last is not None:
            family.add_metric([], max(0.0, (now - last).total_seconds()))
        yield family
