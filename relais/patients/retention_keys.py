"""Which retention key encrypts a patient's identity, and moving it to a later day's key when a newer test comes.

Lives with the patients (the lowest app that needs it) so the intake can call it without depending on relais.retention;
relais.retention.keys builds the purge's rules on it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from relais.core import crypto
from relais.core.fields import encrypted_field_names
from relais.patients.models import Patient


def expiry_day(sampled_at: datetime, *, positive: bool) -> date:
    days = settings.RELAIS_RETENTION["identities_positive" if positive else "identities"]
    return timezone.localdate(sampled_at + timedelta(days=days))


def reencrypt(row: models.Model, key_id: str) -> None:
    """Re-encrypt every encrypted field of ``row`` under ``key_id`` (its retention_key column)."""
    names = encrypted_field_names(type(row))
    plain = {name: getattr(row, name) for name in names}
    row.retention_key = key_id  # type: ignore[attr-defined]
    for name, value in plain.items():
        setattr(row, name, value)  # plaintext in, so save() encrypts anew under the row's key
    row.save(update_fields=[*names, "retention_key"])


def patient_tested(*, patient: Patient, sampled_at: datetime, may_update: bool = True) -> bool:
    """A newer test moves the patient's identity to the later day's key, so the older key can go on its day.

    Called by relais.intake for every test it records (bulk inserts send no signal); a record not yet inserted only
    changes its key, encrypted under it when written. False (nothing done) when a saved record would need rewriting
    and ``may_update`` is False: the intake is planning outside its transaction and does it again inside."""
    wanted = expiry_day(sampled_at, positive=False)
    current = crypto.retention_day_of(patient.retention_key) if patient.retention_key else None
    if current is not None and current >= wanted:
        return True
    if not patient._state.adding and not may_update:
        return False
    key_id = crypto.retention_key_id(wanted)
    if patient._state.adding:
        patient.retention_key = key_id
    else:
        reencrypt(patient, key_id)
    return True
