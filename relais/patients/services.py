"""Patient registration and updates. Every write is audited in the same transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import date

from django.core.exceptions import PermissionDenied
from django.db import transaction

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core import blind_index
from relais.patients.models import Patient


@dataclass(frozen=True)
class PatientIdentity:
    """Already validated and normalised identity (see patients.forms)."""

    last_name: str
    first_names: str
    sex: str
    date_of_birth: date
    nir: str = ""
    address_line: str = ""
    postcode: str = ""
    city: str = ""
    country: str = "FR"
    phone: str = ""
    email: str = ""


class LikelyDuplicate(Exception):
    def __init__(self, matches: list[Patient]) -> None:
        super().__init__("a patient with the same identity already exists")
        self.matches = matches


def _require_patient_access(actor: User) -> None:
    if not actor.sees_patients:
        raise PermissionDenied


def _indexes(pharmacy_id: uuid.UUID, identity: PatientIdentity) -> dict[str, str]:
    return {
        "nir_index": blind_index.nir_index(pharmacy_id=pharmacy_id, nir=identity.nir) if identity.nir else "",
        "name_dob_index": blind_index.name_dob_index(
            pharmacy_id=pharmacy_id, last_name=identity.last_name, date_of_birth=identity.date_of_birth
        ),
        "identity_index": blind_index.identity_index(
            pharmacy_id=pharmacy_id,
            last_name=identity.last_name,
            first_names=identity.first_names,
            date_of_birth=identity.date_of_birth,
        ),
    }


def likely_duplicates(*, pharmacy_id: uuid.UUID, identity: PatientIdentity, exclude_id: uuid.UUID | None = None) -> list[Patient]:
    """Same NIR, or same last name + first name + date of birth, in the same pharmacy."""
    indexes = _indexes(pharmacy_id, identity)
    query = Patient.objects.filter(pharmacy_id=pharmacy_id, identity_index=indexes["identity_index"])
    if indexes["nir_index"]:
        query = query | Patient.objects.filter(pharmacy_id=pharmacy_id, nir_index=indexes["nir_index"])
    if exclude_id is not None:
        query = query.exclude(pk=exclude_id)
    return list(query.distinct()[:5])


def patient_register(*, actor: User, identity: PatientIdentity, allow_duplicate: bool = False) -> Patient:
    _require_patient_access(actor)
    duplicate: LikelyDuplicate | None = None
    with transaction.atomic():
        matches = likely_duplicates(pharmacy_id=actor.tenant_id, identity=identity)
        if matches and not allow_duplicate:
            # The check read other patients' indexes: audited, and committed even though we refuse.
            audit_record(actor=actor, action="patient.duplicate_check", object_type="patient", object_ids=[m.pk for m in matches])
            duplicate = LikelyDuplicate(matches)
        else:
            patient = Patient(pharmacy_id=actor.tenant_id, created_by=actor, **_indexes(actor.tenant_id, identity))
            for field in fields(PatientIdentity):
                setattr(patient, field.name, getattr(identity, field.name))
            patient.save()
            audit_record(
                actor=actor,
                action="patient.create",
                object_type="patient",
                object_ids=[patient.pk],
                detail={"duplicate_confirmed": bool(matches)},
            )
    if duplicate is not None:
        raise duplicate
    return patient


def patient_update_contact(*, actor: User, patient: Patient, phone: str, email: str) -> Patient:
    _require_patient_access(actor)
    if patient.pharmacy_id != actor.pharmacy_id:
        raise Patient.DoesNotExist
    with transaction.atomic():
        patient.phone = phone
        patient.email = email
        patient.save(update_fields=["phone", "email", "updated_at"])
        audit_record(actor=actor, action="patient.update_contact", object_type="patient", object_ids=[patient.pk])
    return patient
