"""The auditor's reads of the audit log: who may read which pharmacy's events, names and labels, the patient lookup
through the blind indexes, and the audit event every such read writes (reading the audit log is itself audited).

Lives above every app whose objects it collects; the queries themselves are relais/audit/selectors.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext as _

from relais.accounts.models import Pharmacy, Role, User
from relais.audit import selectors
from relais.audit.labels import action_label
from relais.audit.models import AuditEvent
from relais.audit.selectors import EventFilters
from relais.audit.services import audit_record
from relais.breach.models import BreachLetter
from relais.certificates.models import Certificate
from relais.core import blind_index
from relais.core.validators import nir_normalise
from relais.notify.models import Notification, ResultLink
from relais.patients.models import Patient
from relais.screenings.models import Screening
from relais.submissions.models import SubmissionItem
from relais.transfer.models import OutboxMessage

CHUNK = 500


def audit_scope(actor: User) -> uuid.UUID | None:
    """The one pharmacy whose events ``actor`` reads, or None for all; PermissionDenied for anyone but auditors and
    pharmacy admins."""
    if actor.role == Role.AUDITOR:
        return actor.pharmacy_id
    if actor.role == Role.PHARMACY_ADMIN and actor.pharmacy_id is not None:
        return actor.pharmacy_id
    raise PermissionDenied


@dataclass(frozen=True)
class EventRow:
    public_id: uuid.UUID
    occurred_at: datetime
    actor: str
    actor_email: str
    actor_role: str
    pharmacy: str
    action: str
    action_label: str
    object_type: str
    object_ids: list[str]
    channel: str
    client_ip: str
    request_id: str
    detail: dict[str, Any]


@dataclass
class EventPage:
    rows: list[EventRow]
    count: int
    count_capped: bool
    next_after: uuid.UUID | None


def event_rows(events: Sequence[AuditEvent]) -> list[EventRow]:
    """Events with the account's current name, the pharmacy's name and the readable action."""
    users = {u["id"]: u for u in User.objects.filter(id__in={e.actor_id for e in events if e.actor_id}).values("id", "full_name", "email")}
    pharmacies = dict(Pharmacy.objects.filter(id__in={e.pharmacy_id for e in events if e.pharmacy_id}).values_list("id", "name"))
    roles = dict(Role.choices)
    rows = []
    for e in events:
        user = users.get(e.actor_id) if e.actor_id else None
        if user is not None:
            name, email = user["full_name"] or user["email"], user["email"]
        else:  # a deleted account keeps the label it had; a patient or a worker has none
            name, email = e.actor_label or _("Relais (automatic)"), e.actor_label if e.actor_id else ""
        rows.append(
            EventRow(
                public_id=e.public_id,
                occurred_at=e.occurred_at,
                actor=str(name),
                actor_email=str(email),
                actor_role=str(roles.get(e.actor_role, e.actor_role)),
                pharmacy=str(pharmacies.get(e.pharmacy_id, "")) if e.pharmacy_id else "",
                action=e.action,
                action_label=action_label(e.action),
                object_type=e.object_type,
                object_ids=[str(i) for i in e.object_ids or []],
                channel=e.channel,
                client_ip=e.client_ip or "",
                request_id=e.request_id,
                detail=dict(e.detail or {}),
            )
        )
    return rows


def events_page(
    *,
    actor: User,
    filters: EventFilters,
    after: uuid.UUID | None = None,
    size: int = selectors.PAGE_SIZE,
    audit_action: str = "audit.search",
    audit_ids: Sequence[object] = (),
    scoped: bool = True,
) -> EventPage:
    """One page of events, newest first (keyset: page 1000 costs what page 1 does), audited as ``audit_action``.

    ``scoped=False`` only for a patient's page: the caller found the patient in the actor's scope, and every event about
    that patient is shown, whichever pharmacy (or operator) wrote it."""
    scope = audit_scope(actor)
    with transaction.atomic():
        query = selectors.filtered(scope=scope if scoped else None, filters=filters)
        count, capped = selectors.capped_count(query)
        events, next_after = selectors.page_of(query, after=after, size=size)
        audit_record(
            actor=actor,
            action=audit_action,
            object_type="audit",
            object_ids=audit_ids,
            pharmacy_id=scope,
            detail={"filters": filters.kinds(), "shown": len(events), "page": "next" if after else "first"},
        )
    return EventPage(rows=event_rows(events), count=count, count_capped=capped, next_after=next_after)


def csv_header() -> list[str]:
    return [
        _("Time (UTC)"),
        _("Account"),
        _("Account email"),
        _("Role"),
        _("Pharmacy"),
        _("Action"),
        _("Action code"),
        _("Object type"),
        _("Objects"),
        _("Channel"),
        _("IP address"),
        _("Request"),
        _("Event id"),
    ]


def events_export(
    *,
    actor: User,
    filters: EventFilters,
    audit_ids: Sequence[object] = (),
    scoped: bool = True,
    limit: int = selectors.EXPORT_MAX,
) -> tuple[list[list[str]], bool]:
    """The matching events as formula-safe CSV rows (header first), newest first, up to ``limit``; audited as one
    audit.export with the row count and the kinds of filter, never their values."""
    scope = audit_scope(actor)
    with transaction.atomic():
        query = selectors.filtered(scope=scope if scoped else None, filters=filters).order_by("-id")
        events = list(query[: limit + 1])
        truncated = len(events) > limit
        events = events[:limit]
        audit_record(
            actor=actor,
            action="audit.export",
            object_type="audit",
            object_ids=audit_ids,
            pharmacy_id=scope,
            detail={"filters": filters.kinds(), "rows": len(events), "truncated": truncated},
        )
    rows: list[list[str]] = [csv_header()]
    for start in range(0, len(events), 2000):
        for r in event_rows(events[start : start + 2000]):
            cells = [
                r.occurred_at.astimezone(UTC).isoformat(timespec="seconds"),
                r.actor,
                r.actor_email,
                r.actor_role,
                r.pharmacy,
                r.action_label,
                r.action,
                r.object_type,
                " ".join(r.object_ids),
                r.channel,
                r.client_ip,
                r.request_id,
                str(r.public_id),
            ]
            rows.append([selectors.csv_cell(c) for c in cells])
    return rows, truncated


def accounts_in_scope(actor: User) -> list[tuple[uuid.UUID, str]]:
    """(user id, label) of the accounts the actor may filter on; pharmacy software appears as its service account."""
    scope = audit_scope(actor)
    users = User.objects.all() if scope is None else User.objects.filter(pharmacy_id=scope)
    return [
        (pk, f"{name} <{email}>" if name else email) for pk, name, email in users.order_by("email").values_list("id", "full_name", "email")
    ]


def pharmacies_in_scope(actor: User) -> list[tuple[uuid.UUID, str]]:
    scope = audit_scope(actor)
    pharmacies = Pharmacy.objects.all() if scope is None else Pharmacy.objects.filter(pk=scope)
    return [(pk, f"{name} ({finess})") for pk, name, finess in pharmacies.order_by("name").values_list("id", "name", "finess")]


# ---------------------------------------------------------------- one patient


@dataclass(frozen=True)
class PatientRef:
    """What an auditor learns of a patient: the record's id and pharmacy, never who it is."""

    id: uuid.UUID
    pharmacy_id: uuid.UUID
    pharmacy: str
    registered_on: date
    merged_into: uuid.UUID | None


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _refs(rows: Iterable[tuple[Any, ...]]) -> list[PatientRef]:
    rows = list(rows)
    names = dict(Pharmacy.objects.filter(id__in={r[1] for r in rows}).values_list("id", "name"))
    return [
        PatientRef(id=pk, pharmacy_id=ph, pharmacy=names.get(ph, ""), registered_on=created.date(), merged_into=merged)
        for pk, ph, created, merged in rows
    ]


def patients_find(*, actor: User, nir: str = "", last_name: str = "", date_of_birth: date | None = None) -> list[PatientRef]:
    """Records matching a NIR, or a last name and birth date, in the actor's scope: the blind index is salted per
    pharmacy, so it is computed once per pharmacy in scope. Audited with the kind of search and the ids found, never
    the searched values."""
    scope = audit_scope(actor)
    pharmacy_ids = [scope] if scope is not None else list(Pharmacy.objects.values_list("id", flat=True))
    if nir:
        column, wanted = "nir_index", {blind_index.nir_index(pharmacy_id=p, nir=nir_normalise(nir)): p for p in pharmacy_ids}
    elif last_name and date_of_birth is not None:
        column = "name_dob_index"
        wanted = {blind_index.name_dob_index(pharmacy_id=p, last_name=last_name, date_of_birth=date_of_birth): p for p in pharmacy_ids}
    else:
        return []
    rows: list[tuple[Any, ...]] = []
    with transaction.atomic():
        for chunk in _chunks(list(wanted)):
            for pk, pharmacy_id, index, created, merged in Patient.objects.filter(**{f"{column}__in": chunk}).values_list(
                "id", "pharmacy_id", column, "created_at", "merged_into_id"
            ):
                if wanted.get(index) == pharmacy_id:  # the index names its pharmacy: a row elsewhere is not this person
                    rows.append((pk, pharmacy_id, created, merged))
        rows.sort(key=lambda r: r[2], reverse=True)
        audit_record(
            actor=actor,
            action="audit.patient_search",
            object_type="patient",
            object_ids=[r[0] for r in rows],
            pharmacy_id=scope,
            detail={"by": "nir" if nir else "name_dob", "found": len(rows)},
        )
    return _refs(rows)


def patient_in_scope(*, actor: User, patient_id: uuid.UUID | str) -> PatientRef:
    """The record ``patient_id`` if it belongs to the actor's scope; Patient.DoesNotExist otherwise (views answer 404)."""
    scope = audit_scope(actor)
    query = Patient.objects.filter(pk=patient_id)
    if scope is not None:
        query = query.filter(pharmacy_id=scope)
    row = query.values_list("id", "pharmacy_id", "created_at", "merged_into_id").first()
    if row is None:
        raise Patient.DoesNotExist
    return _refs([row])[0]


def patient_object_ids(patient_id: uuid.UUID) -> list[uuid.UUID]:
    """Every object id an event about this person may name: the record and those merged into it, their tests (every
    version), messages, result links, certificates, transmissions, imported files and breach letters."""
    patients = [patient_id, *Patient.objects.filter(merged_into_id=patient_id).values_list("id", flat=True)]
    screenings = list(Screening.objects.filter(patient_id__in=patients).values_list("id", flat=True))
    ids: list[uuid.UUID] = [*patients, *screenings]
    ids += Notification.objects.filter(patient_id__in=patients).values_list("id", flat=True)
    ids += ResultLink.objects.filter(patient_id__in=patients).values_list("id", flat=True)
    ids += BreachLetter.objects.filter(patient_id__in=patients).values_list("id", flat=True)
    for chunk in _chunks(screenings):
        ids += Certificate.objects.filter(screening_id__in=chunk).values_list("id", flat=True)
        ids += OutboxMessage.objects.filter(screening_id__in=chunk).values_list("id", flat=True)
        ids += SubmissionItem.objects.filter(screening_id__in=chunk).values_list("submission_id", flat=True).distinct()
    return list(dict.fromkeys(ids))


def patient_filters(patient_id: uuid.UUID, base: EventFilters | None = None) -> EventFilters:
    base = base or EventFilters()
    return EventFilters(
        actor_id=base.actor_id,
        pharmacy_id=base.pharmacy_id,
        action=base.action,
        since=base.since,
        until=base.until,
        object_ids=tuple(patient_object_ids(patient_id)),
    )
