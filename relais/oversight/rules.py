"""Unusual access, found in the audit log by a scheduled job (``oversight.rules``, hourly) and kept as Alert rows.

Each run looks again at the last ``lookback_days`` local days, so an alert appears within the hour and a day is judged
on all its events; an alert's key (kind, subject, day) makes a second run over the same day update it, never duplicate.
Thresholds: ``RELAIS_OVERSIGHT`` in settings (DEFAULTS below).
"""

from __future__ import annotations

import hashlib
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from relais.accounts.models import User
from relais.api.models import ApiClient, ApiClientKey
from relais.audit.models import AuditEvent
from relais.audit.services import audit_record
from relais.oversight.models import Alert, AlertKind
from relais.patients.models import Patient
from relais.screenings.models import Screening

DEFAULTS: dict[str, Any] = {
    "timezone": "Europe/Paris",
    "opening_time": "07:00",
    "closing_time": "21:00",
    "closed_weekdays": [6],  # Monday is 0: Sunday closed; [] when the pharmacies open every day
    "volume_factor": 3.0,  # more than factor x the account's median of the previous days...
    "volume_floor": 30,  # ... and more than this many reads in the day
    "volume_baseline_days": 14,
    "foreign_grace_minutes": 120,  # a record read just before its first test is not an alert
    "birth_date_failures": 5,  # wrong dates of birth on one result link in a day
    "birth_date_failures_per_ip": 10,  # ... or from one address over several links
    "new_key_days": 7,
    "new_key_bulk_reads": 200,  # reads in a day by an API client whose key is younger than new_key_days
    "lookback_days": 2,
    "max_event_ids": 1000,
}

# Actions that read a patient's record or test (a search counts each record it found).
READ_ACTIONS = frozenset(
    {
        "patient.view",
        "patient.view_contact",
        "patient.view_for_screening",
        "patient.review",
        "patient.search",
        "patient.export",
        "patient.api_read",
        "screening.view",
        "screening.pdf",
        "screening.api_read",
    }
)
API_READ_ACTIONS = READ_ACTIONS | {"submission.api_read", "screening.list"}
BIRTH_DATE_FAILURES = frozenset({"result_link.wrong_birth_date", "result_link.locked"})


def config() -> dict[str, Any]:
    return {**DEFAULTS, **getattr(settings, "RELAIS_OVERSIGHT", {})}


@dataclass
class Found:
    kind: str
    key: str
    start: datetime
    end: datetime
    figures: dict[str, Any]
    event_ids: list[int]
    actor_id: uuid.UUID | None = None
    pharmacy_id: uuid.UUID | None = None
    api_client_id: uuid.UUID | None = None


@dataclass
class Day:
    day: date
    start: datetime
    end: datetime
    tz: ZoneInfo
    events: list[tuple[Any, ...]] = field(default_factory=list)  # (id, actor_id, pharmacy_id, action, object_type, ids, at, ip)


def _bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return datetime.combine(day, time(), tz), datetime.combine(day + timedelta(days=1), time(), tz)


def _patients(object_type: str, ids: list[str]) -> list[str]:
    """The patients an event read: all ids of a patient event; the second id of a test event (the test, then its patient)."""
    picked = list(ids) if object_type == "patient" else ids[1:2] if object_type == "screening" else []
    return [i for i in picked if _is_uuid(i)]


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _api_users() -> dict[uuid.UUID, uuid.UUID]:
    return dict(ApiClient.objects.values_list("service_user_id", "id"))


def _load(day: Day, actions: Iterable[str]) -> None:
    day.events = list(
        AuditEvent.objects.filter(occurred_at__gte=day.start, occurred_at__lt=day.end, action__in=list(actions))
        .order_by("id")
        .values_list("id", "actor_id", "pharmacy_id", "action", "object_type", "object_ids", "occurred_at", "client_ip")
    )


def _cap(ids: list[int], cfg: dict[str, Any]) -> list[int]:
    return ids[: int(cfg["max_event_ids"])]


def volume(day: Day, cfg: dict[str, Any], api_users: dict[uuid.UUID, uuid.UUID]) -> Iterator[Found]:
    """An account reading many more records than its own norm: reads > max(factor x median of its previous days, floor)."""
    days = int(cfg["volume_baseline_days"])
    first = day.day - timedelta(days=days)
    history_start, _ = _bounds(first, day.tz)
    counts: dict[uuid.UUID, dict[date, int]] = defaultdict(dict)
    rows = (
        AuditEvent.objects.filter(
            occurred_at__gte=history_start, occurred_at__lt=day.start, action__in=READ_ACTIONS, actor_id__isnull=False
        )
        .annotate(local_day=TruncDate("occurred_at", tzinfo=day.tz))
        .values_list("actor_id", "local_day")
        .annotate(n=Count("id"))
    )
    for actor, local_day, n in rows:
        counts[actor][local_day] = n
    today: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    for event in day.events:
        if event[1] is not None and event[3] in READ_ACTIONS and event[1] not in api_users:
            today[event[1]].append(event)
    for actor, events in today.items():
        history = [counts[actor].get(first + timedelta(days=i), 0) for i in range(days)]
        median = statistics.median(history)
        threshold = max(float(cfg["volume_factor"]) * median, float(cfg["volume_floor"]))
        if len(events) > threshold:
            patients = {p for e in events for p in _patients(e[4], e[5])}
            yield Found(
                kind=AlertKind.VOLUME,
                key=f"volume|{actor}|{day.day}",
                start=day.start,
                end=day.end,
                figures={"reads": len(events), "patients": len(patients), "median": median, "threshold": threshold, "events": len(events)},
                event_ids=_cap([e[0] for e in events], cfg),
                actor_id=actor,
                pharmacy_id=events[-1][2],
            )


def _opening(cfg: dict[str, Any]) -> tuple[time, time]:
    return time.fromisoformat(str(cfg["opening_time"])), time.fromisoformat(str(cfg["closing_time"]))


def off_hours(day: Day, cfg: dict[str, Any], api_users: dict[uuid.UUID, uuid.UUID]) -> Iterator[Found]:
    """Staff reading records before opening, after closing, or on a closed day (local time)."""
    opens, closes = _opening(cfg)
    closed_day = day.day.weekday() in set(cfg["closed_weekdays"])
    found: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    for event in day.events:
        if event[1] is None or event[3] not in READ_ACTIONS or event[1] in api_users:
            continue
        local = event[6].astimezone(day.tz).time()
        if closed_day or local < opens or local >= closes:
            found[event[1]].append(event)
    for actor, events in found.items():
        yield Found(
            kind=AlertKind.OFF_HOURS,
            key=f"off_hours|{actor}|{day.day}",
            start=day.start,
            end=day.end,
            figures={
                "reads": len(events),
                "closed_day": closed_day,
                "opening": f"{opens:%H:%M}-{closes:%H:%M}",
                "first": events[0][6].astimezone(day.tz).strftime("%H:%M"),
                "last": events[-1][6].astimezone(day.tz).strftime("%H:%M"),
                "events": len(events),
            },
            event_ids=_cap([e[0] for e in events], cfg),
            actor_id=actor,
            pharmacy_id=events[-1][2],
        )


def foreign_patients(day: Day, cfg: dict[str, Any], now: datetime) -> Iterator[Found]:
    """Reads of records never tested at the reader's pharmacy (a record merged into a tested one counts as tested)."""
    latest = now - timedelta(minutes=int(cfg["foreign_grace_minutes"]))
    reads: dict[tuple[uuid.UUID, uuid.UUID], list[tuple[tuple[Any, ...], set[str]]]] = defaultdict(list)
    wanted: dict[uuid.UUID, set[str]] = defaultdict(set)
    for event in day.events:
        if event[1] is None or event[2] is None or event[3] not in READ_ACTIONS or event[6] > latest:
            continue
        patients = set(_patients(event[4], event[5]))
        if patients:
            reads[(event[1], event[2])].append((event, patients))
            wanted[event[2]] |= patients
    tested: dict[uuid.UUID, set[str]] = {}
    for pharmacy, patients in wanted.items():
        ids = sorted(patients)
        merged = dict(Patient.objects.filter(pk__in=ids, merged_into__isnull=False).values_list("id", "merged_into_id"))
        kept = {str(p) for p in merged.values()}
        have = {
            str(p)
            for p in Screening.objects.filter(pharmacy_id=pharmacy, patient_id__in=ids + sorted(kept))
            .values_list("patient_id", flat=True)
            .distinct()
        }
        tested[pharmacy] = have | {str(p) for p, into in merged.items() if str(into) in have}
    for (actor, pharmacy), items in reads.items():
        events = [(e, ps - tested[pharmacy]) for e, ps in items if ps - tested[pharmacy]]
        if not events:
            continue
        patients = set().union(*(ps for _, ps in events))
        yield Found(
            kind=AlertKind.FOREIGN_PATIENT,
            key=f"foreign_patient|{actor}|{pharmacy}|{day.day}",
            start=day.start,
            end=day.end,
            figures={"patients": len(patients), "reads": len(events), "events": len(events)},
            event_ids=_cap([e[0] for e, _ in events], cfg),
            actor_id=actor,
            pharmacy_id=pharmacy,
        )


def birth_dates(day: Day, cfg: dict[str, Any]) -> Iterator[Found]:
    """Wrong dates of birth on one result link, or from one address across several links (someone guessing)."""
    by_link: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    by_ip: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for event in day.events:
        if event[3] not in BIRTH_DATE_FAILURES or not event[5]:
            continue
        by_link[event[5][0]].append(event)
        if event[7]:
            by_ip[str(event[7])].append(event)
    for link, events in by_link.items():
        if len(events) >= int(cfg["birth_date_failures"]):
            yield Found(
                kind=AlertKind.BIRTH_DATE,
                key=f"birth_date|link|{link}|{day.day}",
                start=day.start,
                end=day.end,
                figures={
                    "failures": len(events),
                    "links": 1,
                    "locked": any(e[3] == "result_link.locked" for e in events),
                    "events": len(events),
                },
                event_ids=_cap([e[0] for e in events], cfg),
                pharmacy_id=events[-1][2],
            )
    for ip, events in by_ip.items():
        links = {e[5][0] for e in events}
        pharmacies = {e[2] for e in events}
        if len(events) >= int(cfg["birth_date_failures_per_ip"]) and len(links) > 1:
            digest = hashlib.sha256(ip.encode()).hexdigest()[:16]  # the address stays in the events, not in the key
            yield Found(
                kind=AlertKind.BIRTH_DATE,
                key=f"birth_date|ip|{digest}|{day.day}",
                start=day.start,
                end=day.end,
                figures={"failures": len(events), "links": len(links), "pharmacies": len(pharmacies), "events": len(events)},
                event_ids=_cap([e[0] for e in events], cfg),
                pharmacy_id=next(iter(pharmacies)) if len(pharmacies) == 1 else None,
            )


def new_key_bulk(day: Day, cfg: dict[str, Any], api_users: dict[uuid.UUID, uuid.UUID]) -> Iterator[Found]:
    """An API client reading in bulk within ``new_key_days`` of its newest key (or of its own creation)."""
    recent = day.end - timedelta(days=int(cfg["new_key_days"]))
    reads: dict[uuid.UUID, list[tuple[Any, ...]]] = defaultdict(list)
    for event in day.events:
        if event[1] in api_users and event[3] in API_READ_ACTIONS:
            reads[event[1]].append(event)
    for user_id, events in reads.items():
        if len(events) < int(cfg["new_key_bulk_reads"]):
            continue
        client_id = api_users[user_id]
        created = ApiClient.objects.filter(pk=client_id).values_list("created_at", flat=True).first()
        newest_key = (
            ApiClientKey.objects.filter(client_id=client_id, created_at__lt=day.end)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        born = max(d for d in (created, newest_key) if d is not None) if (created or newest_key) else None
        if born is None or born < recent:
            continue
        yield Found(
            kind=AlertKind.NEW_KEY_BULK,
            key=f"new_key_bulk|{client_id}|{day.day}",
            start=day.start,
            end=day.end,
            figures={"reads": len(events), "key_age_days": max(0, (events[-1][6] - born).days), "events": len(events)},
            event_ids=_cap([e[0] for e in events], cfg),
            actor_id=user_id,
            api_client_id=client_id,
            pharmacy_id=events[-1][2],
        )


def _store(found: Found, labels: dict[uuid.UUID, str]) -> str:
    """Create the alert, or refresh the open one with the same key; 'new', 'updated' or 'same'."""
    values = {
        "kind": found.kind,
        "actor_id": found.actor_id,
        "actor_label": labels.get(found.actor_id, "") if found.actor_id else "",
        "api_client_id": found.api_client_id,
        "pharmacy_id": found.pharmacy_id,
        "window_start": found.start,
        "window_end": found.end,
        "figures": found.figures,
        "event_ids": found.event_ids,
    }
    alert, created = Alert.objects.get_or_create(key=found.key, defaults=values)
    if created:
        return "new"
    if alert.acknowledged_at is None and (alert.figures != found.figures or alert.event_ids != found.event_ids):
        Alert.objects.filter(pk=alert.pk).update(figures=found.figures, event_ids=found.event_ids, updated_at=timezone.now())
        return "updated"
    return "same"


def evaluate(*, now: datetime) -> dict[str, Any]:
    """Run every rule over the local days up to ``now``; returns what it found, by kind."""
    cfg = config()
    tz = ZoneInfo(str(cfg["timezone"]))
    today = now.astimezone(tz).date()
    api_users = _api_users()
    report: dict[str, Any] = {"days": [], "new": 0, "updated": 0, "by_kind": {}}
    for offset in range(int(cfg["lookback_days"]) - 1, -1, -1):
        start, end = _bounds(today - timedelta(days=offset), tz)
        day = Day(day=today - timedelta(days=offset), start=start, end=min(end, now), tz=tz)
        _load(day, API_READ_ACTIONS | BIRTH_DATE_FAILURES)
        found = [
            *volume(day, cfg, api_users),
            *off_hours(day, cfg, api_users),
            *foreign_patients(day, cfg, now),
            *birth_dates(day, cfg),
            *new_key_bulk(day, cfg, api_users),
        ]
        for f in found:
            f.end = end  # the window is the whole day, whenever the run looked at it
        labels = dict(User.objects.filter(id__in={f.actor_id for f in found if f.actor_id}).values_list("id", "email"))
        with transaction.atomic():
            for f in found:
                outcome = _store(f, labels)
                if outcome != "same":
                    report[outcome] += 1
                    report["by_kind"][f.kind] = report["by_kind"].get(f.kind, 0) + 1
        report["days"].append(day.day.isoformat())
    return report


def run_job(now: datetime) -> dict[str, Any]:
    """The scheduled job: evaluate, then record that the audit log was read for it (counts only)."""
    report = evaluate(now=now)
    with transaction.atomic():
        audit_record(actor=None, action="oversight.run", object_type="alert", detail={k: report[k] for k in ("new", "updated", "by_kind")})
    return report
