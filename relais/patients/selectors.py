"""Reads of patient identity. Each one writes its audit event in the same transaction, or fails."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core.tenancy import for_actor, get_for_actor
from relais.core.validators import nir_normalise
from relais.patients import search
from relais.patients.models import Patient


def _searchable(actor: User) -> QuerySet[Patient]:
    return for_actor(Patient, actor).filter(merged_into__isnull=True)  # a merged record's tests live on the record it was merged into


def patient_get(*, actor: User, patient_id: uuid.UUID | str, purpose: str = "view") -> Patient:
    """Another pharmacy's patient raises Patient.DoesNotExist, which views turn into 404."""
    with transaction.atomic():
        patient = get_for_actor(Patient, actor, patient_id)
        audit_record(actor=actor, action=f"patient.{purpose}", object_type="patient", object_ids=[patient.pk])
    return patient


def patient_search(
    *,
    actor: User,
    nir: str = "",
    last_name: str = "",
    date_of_birth: date | None = None,
    first_names: str = "",
    phone: str = "",
) -> list[Patient]:
    """The records relais.patients.search finds (exact matches first), audited there."""
    query = search.SearchQuery(
        last_name=last_name, first_names=first_names, date_of_birth=date_of_birth, nir=nir_normalise(nir) if nir else "", phone=phone
    )
    return [hit.patient for hit in search.patient_search(actor=actor, query=query)]


RECENT_LIMIT = 200  # a list, not an export: the busiest week of a pharmacy still fits


@dataclass(frozen=True)
class RecentPatient:
    patient: Patient
    last_test_at: datetime
    tests: int


def period_start(period: str, *, now: datetime | None = None) -> datetime:
    """Local midnight today ("day") or on Monday ("week")."""
    today = timezone.localdate(now or timezone.now())
    first = today - timedelta(days=today.weekday()) if period == "week" else today
    return timezone.make_aware(datetime.combine(first, time.min))


def patients_tested(*, actor: User, period: str, now: datetime | None = None) -> list[RecentPatient]:
    """The pharmacy's patients with a test recorded today or this week, latest test first; audited with their ids."""
    since = period_start(period, now=now)
    # The tests' model through the relation (patients sit below screenings: no import), on screening_pharmacy_recorded.
    tests = Patient._meta.get_field("screenings").related_model._default_manager  # type: ignore[union-attr]
    rows = list(
        tests.filter(pharmacy_id=actor.tenant_id, recorded_at__gte=since)
        .values("patient_id")
        .annotate(last=Max("recorded_at"), count=Count("id"))
        .order_by("-last")[:RECENT_LIMIT]
    )
    with transaction.atomic():
        patients = {p.pk: p for p in _searchable(actor).filter(pk__in=[r["patient_id"] for r in rows])}
        found = [RecentPatient(patients[r["patient_id"]], r["last"], r["count"]) for r in rows if r["patient_id"] in patients]
        audit_record(
            actor=actor,
            action="patient.recent_list",
            object_type="patient",
            object_ids=[r.patient.pk for r in found],
            detail={"period": period, "count": len(found)},
        )
    return found


def patients_to_review(*, actor: User) -> list[Patient]:
    """Records registered beside a look-alike, for the pharmacy to merge or keep apart (names shown: audited)."""
    with transaction.atomic():
        patients = list(
            _searchable(actor)
            .filter(possible_duplicate_of__isnull=False)
            .select_related("possible_duplicate_of")
            .order_by("created_at")[:200]
        )
        if patients:
            ids = [p.pk for p in patients] + [p.possible_duplicate_of_id for p in patients]
            audit_record(actor=actor, action="patient.review_list", object_type="patient", object_ids=ids)
    return patients


def patients_to_review_count(*, actor: User) -> int:
    return int(_searchable(actor).filter(possible_duplicate_of__isnull=False).count())
