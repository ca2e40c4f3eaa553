"""queue_health: depth, oldest age, overdue, parked and in-flight rows per queue, in a bounded number of queries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relais.core.queue import MAX_ERRORS
from relais.ops.queues import QUEUE_NAMES, assess, queue_health, stalled
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.services import outbox_claim


def _one(name: str, **kwargs: Any) -> Any:
    return next(h for h in queue_health(**kwargs) if h.name == name)


def test_every_queue_empty(db: Any) -> None:
    with CaptureQueriesContext(connection) as queries:
        found = queue_health()
    assert [h.name for h in found] == list(QUEUE_NAMES)
    assert all(h.depth == 0 and h.parked == 0 and h.oldest_age_seconds is None for h in found)
    assert all(assess(h) == ("pass", []) for h in found)
    assert len(queries) <= 20


def test_transfer_queue_figures(screening: Any) -> None:
    now = timezone.now()
    health = _one("transfer", now=now + timedelta(minutes=40))
    assert health.depth == 1 and health.in_flight == 0 and health.parked == 0
    assert 40 * 60 - 5 <= (health.oldest_age_seconds or 0) <= 40 * 60 + 5
    assert assess(health) == ("fail", ["oldest_age_seconds", "overdue_seconds"])  # due 40 minutes and nobody took it
    assert stalled(health)
    soon = _one("transfer", now=now + timedelta(minutes=10))
    assert assess(soon) == ("warn", ["overdue_seconds"]) and not stalled(soon)
    outbox_claim(owner="test", limit=10, now=now)
    claimed = _one("transfer", now=now)
    assert claimed.in_flight == 1 and claimed.overdue_seconds is None
    OutboxMessage.objects.update(status=TransferStatus.REJECTED, error_count=MAX_ERRORS)
    parked = _one("transfer", now=now)
    assert parked.depth == 0 and parked.parked == 1 and assess(parked) == ("warn", ["parked"])


def test_rejections_by_the_platform_are_not_parked(screening: Any) -> None:
    OutboxMessage.objects.update(status=TransferStatus.REJECTED, error_count=0)
    assert _one("transfer").parked == 0


def test_thresholds_from_settings(screening: Any, settings: Any) -> None:
    settings.RELAIS_QUEUE_THRESHOLDS = {"transfer": {"age_fail": 60}}
    assert assess(_one("transfer", now=timezone.now() + timedelta(minutes=2)))[0] == "fail"
