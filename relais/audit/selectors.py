"""Queries over the audit log for the auditor pages: filters, the objects' index, keyset pages, capped counts.

Who may read which pharmacy's events is decided above (relais/oversight/auditlog.py, which also writes the audit event
of each read): this module only takes the pharmacy to scope to, so the audit app stays below accounts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from relais.audit.models import AuditEvent, AuditSubject

PAGE_SIZE = 50
COUNT_CAP = 10_000  # counting further costs time and tells an auditor nothing more
EXPORT_MAX = 100_000
SUBJECT_EVENTS_MAX = 50_000  # events about one set of objects held in memory, newest first
CHUNK = 500
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class EventFilters:
    actor_id: uuid.UUID | None = None
    pharmacy_id: uuid.UUID | None = None
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None
    event_ids: tuple[int, ...] | None = None  # an alert's events
    object_ids: tuple[uuid.UUID, ...] | None = None  # every object of one patient

    def kinds(self) -> list[str]:
        """Which filters are in use, for the audit detail: never their values (an object id could lead to a patient)."""
        names = ("actor_id", "pharmacy_id", "action", "since", "until", "event_ids", "object_ids")
        return [name.removesuffix("_id") for name in names if getattr(self, name) not in (None, "")]


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def subject_event_ids(object_ids: Iterable[uuid.UUID], *, limit: int = SUBJECT_EVENTS_MAX) -> list[int]:
    """Ids of the events naming any of ``object_ids``, newest first: one index range per object (object_id, event_id)."""
    found: set[int] = set()
    wanted = list(dict.fromkeys(object_ids))
    for chunk in _chunks(wanted):
        found.update(AuditSubject.objects.filter(object_id__in=chunk).values_list("event_id", flat=True))
    return sorted(found, reverse=True)[:limit]


def filtered(*, scope: uuid.UUID | None, filters: EventFilters) -> QuerySet[AuditEvent]:
    """Events matching ``filters``, of pharmacy ``scope`` only unless it is None."""
    query = AuditEvent.objects.all()
    if scope is not None:
        query = query.filter(pharmacy_id=scope)
    if filters.pharmacy_id is not None:
        query = query.filter(pharmacy_id=filters.pharmacy_id)
    if filters.actor_id is not None:
        query = query.filter(actor_id=filters.actor_id)
    if filters.action:
        query = query.filter(action=filters.action)
    if filters.since is not None:
        query = query.filter(occurred_at__gte=filters.since)
    if filters.until is not None:
        query = query.filter(occurred_at__lt=filters.until)
    ids: list[int] | None = None
    if filters.object_ids is not None:
        ids = subject_event_ids(filters.object_ids)
    if filters.event_ids is not None:
        ids = sorted(set(filters.event_ids) & set(ids) if ids is not None else set(filters.event_ids), reverse=True)
    if ids is not None:
        query = query.filter(id__in=ids[:SUBJECT_EVENTS_MAX])
    return query


def capped_count(query: QuerySet[AuditEvent]) -> tuple[int, bool]:
    n = query.order_by().values("id")[: COUNT_CAP + 1].count()
    return min(n, COUNT_CAP), n > COUNT_CAP


def page_of(query: QuerySet[AuditEvent], *, after: uuid.UUID | None, size: int) -> tuple[list[AuditEvent], uuid.UUID | None]:
    """Up to ``size`` events older than the event ``after``, newest first, and the cursor of the next page (or None)."""
    if after is not None:
        cursor = AuditEvent.objects.filter(public_id=after).values_list("id", flat=True).first()
        query = query.filter(id__lt=cursor) if cursor is not None else query.none()
    events = list(query.order_by("-id")[: size + 1])
    more = len(events) > size
    events = events[:size]
    return events, (events[-1].public_id if more and events else None)


def who_touched(
    object_ids: Iterable[uuid.UUID], *, after: uuid.UUID | None = None, size: int = PAGE_SIZE
) -> tuple[list[AuditEvent], uuid.UUID | None]:
    """The newest events naming any of ``object_ids``: what the patient page and bench/audit_lookup.py time."""
    return page_of(filtered(scope=None, filters=EventFilters(object_ids=tuple(object_ids))), after=after, size=size)


def csv_cell(value: object) -> str:
    """Neutralise spreadsheet formula injection: a cell starting with = + - @ tab or CR gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
