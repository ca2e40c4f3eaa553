"""Reads of patient identity. Each one writes its audit event in the same transaction, or fails."""

from __future__ import annotations

import uuid
from datetime import date

from django.db import transaction
from django.db.models import QuerySet

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core import blind_index
from relais.core.tenancy import for_actor, get_for_actor
from relais.core.validators import nir_normalise
from relais.patients.models import Patient


def _searchable(actor: User) -> QuerySet[Patient]:
    return for_actor(Patient, actor).filter(merged_into__isnull=True)  # a merged record's tests live on the record it was merged into


def patient_get(*, actor: User, patient_id: uuid.UUID | str, purpose: str = "view") -> Patient:
    """Another pharmacy's patient raises Patient.DoesNotExist, which views turn into 404."""
    with transaction.atomic():
        patient = get_for_actor(Patient, actor, patient_id)
        audit_record(actor=actor, action=f"patient.{purpose}", object_type="patient", object_ids=[patient.pk])
    return patient


def patient_search(*, actor: User, nir: str = "", last_name: str = "", date_of_birth: date | None = None) -> list[Patient]:
    """Exact search by NIR, or by last name plus date of birth, through blind indexes."""
    query = _searchable(actor)
    if nir:
        query = query.filter(nir_index=blind_index.nir_index(pharmacy_id=actor.tenant_id, nir=nir_normalise(nir)))
    elif last_name and date_of_birth:
        index = blind_index.name_dob_index(pharmacy_id=actor.tenant_id, last_name=last_name, date_of_birth=date_of_birth)
        query = query.filter(name_dob_index=index)
    else:
        return []
    with transaction.atomic():
        patients = list(query.order_by("-created_at")[:20])
        audit_record(
            actor=actor,
            action="patient.search",
            object_type="patient",
            object_ids=[p.pk for p in patients],
            detail={"by": "nir" if nir else "name_dob"},
        )
    return patients


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
