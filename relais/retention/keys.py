"""Which retention key encrypts a patient's data, and moving it to a later day's key when a newer test comes.

A patient's identity (and the addresses of its notifications) is encrypted under the retention key of the day its
latest test's retention ends; the purge destroys a day's key once no row uses it (see relais.core.crypto).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from relais.patients.models import Patient
from relais.patients.retention_keys import expiry_day, patient_tested
from relais.screenings.models import Screening, ScreeningResult
from relais.screenings.vocab import RESULT_DETECTED


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


def screening_saved(sender: Any, instance: Screening, created: bool = False, raw: bool = False, **kwargs: Any) -> None:
    """A newer test moves the patient's identity to the later day's key, so the older key can go on its day."""
    if raw:
        return
    patient = instance._state.fields_cache.get("patient") or Patient.objects.get(pk=instance.patient_id)
    patient_tested(patient=patient, sampled_at=instance.sampled_at)


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
