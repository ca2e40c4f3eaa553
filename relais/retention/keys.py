"""Which retention key encrypts a patient's data, and moving it to a later day's key when a newer test comes.

A patient's identity (and the addresses of its notifications) is encrypted under the retention key of the day its
latest test's retention ends; the purge destroys a day's key once no row uses it (see relais.core.crypto).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Max
from django.utils import timezone

from relais.core import crypto
from relais.core.fields import encrypted_field_names
from relais.patients.models import Patient
from relais.screenings.models import Screening, ScreeningResult
from relais.screenings.vocab import RESULT_DETECTED


def expiry_day(sampled_at: datetime, *, positive: bool) -> date:
    days = settings.RELAIS_RETENTION["identities_positive" if positive else "identities"]
    return timezone.localdate(sampled_at + timedelta(days=days))


def patient_expiry_day(patient: Patient) -> date:
    """The day the patient's data may go: after its latest test's retention, or a test-less registration's."""
    days = settings.RELAIS_RETENTION
    latest = Screening.objects.filter(patient_id=patient.pk).aggregate(at=Max("sampled_at"))["at"]
    positive = ScreeningResult.objects.filter(screening__patient_id=patient.pk, result=RESULT_DETECTED).aggregate(
        at=Max("screening__sampled_at")
    )["at"]
    candidates = [timezone.localdate(patient.created_at + timedelta(days=days["identities"]))]
    if latest is not None:
        candidates.append(expiry_day(latest, positive=False))
    if positive is not None:
        candidates.append(expiry_day(positive, positive=True))
    return max(candidates)


def reencrypt(row: models.Model, key_id: str) -> None:
    """Re-encrypt every encrypted field of ``row`` under ``key_id`` (its retention_key column)."""
    names = encrypted_field_names(type(row))
    plain = {name: getattr(row, name) for name in names}
    row.retention_key = key_id  # type: ignore[attr-defined]
    for name, value in plain.items():
        setattr(row, name, value)  # plaintext in, so save() encrypts anew under the row's key
    row.save(update_fields=[*names, "retention_key"])


def screening_saved(sender: Any, instance: Screening, created: bool = False, raw: bool = False, **kwargs: Any) -> None:
    """A newer test moves the patient's identity to the later day's key, so the older key can go on its day."""
    if raw:
        return
    patient = instance._state.fields_cache.get("patient") or Patient.objects.get(pk=instance.patient_id)
    patient_tested(patient=patient, sampled_at=instance.sampled_at)


def patient_tested(*, patient: Patient, sampled_at: datetime) -> None:
    """A newer test moves the patient's identity to the later day's key, so the older key can go on its day.

    Called by relais.intake for every test it records (bulk inserts send no signal); a record not yet inserted only
    changes its key, encrypted under it when written."""
    wanted = expiry_day(sampled_at, positive=False)
    current = crypto.retention_day_of(patient.retention_key) if patient.retention_key else None
    if current is not None and current >= wanted:
        return
    key_id = crypto.retention_key_id(wanted)
    if patient._state.adding:
        patient.retention_key = key_id
    else:
        reencrypt(patient, key_id)


def notification_saving(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """A message's address goes under its patient's key: shredded with the identity at the latest."""
    if raw or instance.retention_key:
        return
    patient = instance._state.fields_cache.get("patient")
    key = (
        patient.retention_key
        if patient is not None
        else Patient.objects.filter(pk=instance.patient_id).values_list("retention_key", flat=True).first()
    )
    instance.retention_key = key or ""
