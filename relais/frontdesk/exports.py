"""Exports of a day or a date range of tests: chosen and audited in one transaction, then read back in chunks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.frontdesk.selectors import counted_tests, start_of
from relais.screenings.models import Screening

FORMATS = ("csv", "pdf")
MAX_DAYS = 31
MAX_TESTS = 10_000  # about 320 tests a day over 31 days: more than a pharmacy records, and a bounded file
CHUNK = 500


@dataclass(frozen=True)
class Export:
    """What was exported and audited: the tests in order; nothing here is read before the audit event is written."""

    pharmacy_name: str
    first_day: date
    last_day: date
    fmt: str
    screening_ids: list[uuid.UUID]
    patient_count: int


@dataclass(frozen=True)
class Row:
    sampled_at: datetime
    patient_name: str
    date_of_birth: date
    device: str
    kit_lot: str
    kit_expiry: date | None
    result: str
    transmission: str
    certificate: bool


def check_period(*, first_day: date, last_day: date) -> None:
    if last_day < first_day:
        raise ValidationError({"last_day": _("The last day comes before the first day.")})
    if (last_day - first_day).days + 1 > MAX_DAYS:
        raise ValidationError({"last_day": _("Choose at most %(days)d days.") % {"days": MAX_DAYS}})


def export_open(*, actor: User, first_day: date, last_day: date, fmt: str) -> Export:
    """The tests recorded from ``first_day`` to ``last_day`` (included), with one audit event naming every patient."""
    if fmt not in FORMATS:
        raise ValidationError({"fmt": _("Unknown format.")})
    check_period(first_day=first_day, last_day=last_day)
    with transaction.atomic():
        rows = list(
            counted_tests(actor, patient_data=True)
            .filter(recorded_at__gte=start_of(first_day), recorded_at__lt=start_of(last_day + timedelta(days=1)))
            .order_by("sampled_at", "pk")  # a register reads in the order the swabs were taken
            .values_list("pk", "patient_id")[: MAX_TESTS + 1]
        )
        if len(rows) > MAX_TESTS:
            raise ValidationError({"last_day": _("More than %(max)d tests in this period: choose fewer days.") % {"max": MAX_TESTS}})
        patients = list(dict.fromkeys(patient for _pk, patient in rows))
        audit_record(
            actor=actor,
            action="screening.export",
            object_type="patient",
            object_ids=patients,
            detail={"format": fmt, "first_day": first_day.isoformat(), "last_day": last_day.isoformat(), "tests": len(rows)},
        )
    pharmacy = actor.pharmacy
    return Export(
        pharmacy_name=pharmacy.name if pharmacy else "",
        first_day=first_day,
        last_day=last_day,
        fmt=fmt,
        screening_ids=[pk for pk, _patient in rows],
        patient_count=len(patients),
    )


def _row(screening: Screening) -> Row:
    patient = screening.patient
    results = "; ".join(f"{r.analyte_label}: {r.get_result_display()}" for r in screening.results.all())
    transfer = screening.transfer
    certificate = getattr(screening, "certificate", None)
    return Row(
        sampled_at=timezone.localtime(screening.sampled_at),
        patient_name=patient.display_name,
        date_of_birth=cast(date, patient.date_of_birth),
        device=f"{screening.device.manufacturer}, {screening.device.name}",
        kit_lot=screening.kit_lot,
        kit_expiry=screening.kit_expiry,
        result=results or _("No result yet"),
        transmission=str(transfer.get_status_display()) if transfer else _("Not sent"),
        certificate=certificate is not None and certificate.revoked_at is None,
    )


def export_rows(export: Export) -> Iterator[Row]:
    """The exported tests, read CHUNK at a time (ids already scoped and audited), in sampling order."""
    ids = export.screening_ids
    for chunk in (ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)):
        screenings = {
            s.pk: s
            for s in Screening.objects.filter(pk__in=chunk)
            .select_related("patient", "device", "certificate")
            .prefetch_related("results", "outbox")
        }
        for pk in chunk:
            if pk in screenings:  # purged between the audit and the read: nothing to show
                yield _row(screenings[pk])
