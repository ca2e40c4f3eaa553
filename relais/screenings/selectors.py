"""Reads of screenings with their patients' identity, audited in the same transaction."""

from __future__ import annotations

import uuid
from datetime import datetime, time

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core.tenancy import for_actor
from relais.screenings.models import Screening


def _scoped(actor: User) -> QuerySet[Screening]:
    return for_actor(Screening, actor).select_related("patient", "device")


def screenings_today(*, actor: User, now: datetime | None = None) -> list[Screening]:
    now = timezone.localtime(now or timezone.now())
    start = timezone.make_aware(datetime.combine(now.date(), time.min))
    with transaction.atomic():
        screenings = list(
            _scoped(actor)
            .filter(is_current=True, recorded_at__gte=start)
            .prefetch_related("results", "outbox", "notifications")
            .order_by("-recorded_at")
        )
        audit_record(
            actor=actor,
            action="screening.list",
            object_type="screening",
            object_ids=[s.pk for s in screenings],
        )
    return screenings


def screening_get(*, actor: User, screening_id: uuid.UUID | str, purpose: str = "view") -> Screening:
    with transaction.atomic():
        screening = _scoped(actor).prefetch_related("results", "outbox").get(pk=screening_id)
        audit_record(actor=actor, action=f"screening.{purpose}", object_type="screening", object_ids=[screening.pk, screening.patient_id])
    return screening


def screening_history(*, actor: User, screening: Screening) -> list[Screening]:
    """Every version of the same test, oldest first (the caller already read and audited one)."""
    return list(_scoped(actor).filter(series_id=screening.series_id).prefetch_related("results", "outbox").order_by("version"))


def patient_screenings(*, actor: User, patient_id: uuid.UUID | str) -> list[Screening]:
    # Called after patient_get, whose audit event covers this read.
    return list(
        _scoped(actor)
        .filter(patient_id=patient_id, is_current=True)
        .prefetch_related("results", "outbox", "notifications")
        .order_by("-sampled_at")
    )
