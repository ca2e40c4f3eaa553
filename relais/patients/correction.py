"""Correcting a patient's identity (a typo, an identity rejected by the national platform), in one transaction.

The record's encrypted fields and its blind indexes change, one audit event names the fields (never their values), and
the apps above patients that hold something built from the identity (messages sent to the national platform,
certificates, patient messages) register a handler here: they re-send, re-issue and tell the patient in the same
transaction (relais.corrections registers it in its AppConfig.ready), so patients imports none of them."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core import blind_index
from relais.core.tenancy import get_for_actor
from relais.patients import services
from relais.patients.models import Patient
from relais.patients.services import PatientIdentity

# What the identity form corrects; phone and email have their own form (patients:contact).
CORRECTABLE = (
    "last_name", "first_names", "sex", "date_of_birth", "nir", "address_line", "postcode", "city", "country",
    "latin_last_name", "latin_first_names", "identity_verified",
)  # fmt: skip
# Fields printed on the EU certificate and sent as the patient's name: a change there matters to every test.
NAME_FIELDS = ("last_name", "first_names", "date_of_birth", "latin_last_name", "latin_first_names")


class IdentityHandler(Protocol):
    def __call__(self, *, actor: User, patient: Patient, fields: list[str], now: datetime) -> Mapping[str, int]: ...


IDENTITY_HANDLERS: list[IdentityHandler] = []


def on_identity_corrected(handler: IdentityHandler) -> IdentityHandler:
    """Register ``handler(actor=..., patient=..., fields=..., now=...)``, run in the correction's transaction; its
    answer (counts, e.g. {"tests_resent": 2}) goes into the audit event and the result. Registered once only."""
    if handler not in IDENTITY_HANDLERS:
        IDENTITY_HANDLERS.append(handler)
    return handler


@dataclass(frozen=True)
class IdentityCorrection:
    patient: Patient
    fields: list[str]  # the names of the fields that changed, sorted
    effects: dict[str, int] = field(default_factory=dict)


def _same(name: str, old: Any, new: Any) -> bool:
    if name == "identity_verified":  # an unticked box on a correction says nothing new about an unrecorded check
        return bool(old) == bool(new)
    if name in ("last_name", "first_names"):
        return bool(old == new)  # case or accent changes are corrections too (the certificate prints them)
    return bool((old or "") == (new or "")) if isinstance(new, str) else bool(old == new)


def identity_changes(*, patient: Patient, identity: PatientIdentity) -> list[str]:
    """The names of the correctable fields whose value differs, in form order."""
    return [name for name in CORRECTABLE if not _same(name, getattr(patient, name), getattr(identity, name))]


def _index_values(pharmacy_id: uuid.UUID, values: Mapping[str, Any]) -> dict[str, str]:
    """services.blind_indexes on the corrected values: every argument it takes is given by name (it may grow)."""
    accepted = inspect.signature(services.blind_indexes).parameters
    return services.blind_indexes(pharmacy_id=pharmacy_id, **{k: v for k, v in values.items() if k in accepted and k != "pharmacy_id"})


def _refuse_duplicate(*, actor: User, patient: Patient, identity: PatientIdentity) -> None:
    """Refuse a correction that makes the record another live patient's twin (merge them instead: patients:review)."""
    matches = services.likely_duplicates(pharmacy_id=actor.tenant_id, identity=identity, exclude_id=patient.pk)
    if not matches:
        return
    nir_index = blind_index.nir_index(pharmacy_id=actor.tenant_id, nir=identity.nir) if identity.nir else ""
    if nir_index and any(m.nir_index == nir_index for m in matches):
        error = {"nir": [_("Another patient of this pharmacy already has this NIR: check it, or merge the two records.")]}
    else:
        error = {
            "last_name": [
                _(
                    "Another patient of this pharmacy already has this last name, first names and date of birth: "
                    "check them, or merge the two records."
                )
            ]
        }
    raise ValidationError(error)


def patient_correct_identity(
    *, actor: User, patient_id: uuid.UUID | str, identity: PatientIdentity, now: datetime | None = None
) -> IdentityCorrection:
    """Apply the correctable fields of ``identity`` (validated by patients.identity.identity_from) to the record.

    ValidationError when nothing changes or the corrected record would duplicate another live patient; then nothing is
    written but the audit event of the duplicate check (it read other records' indexes)."""
    if not actor.sees_patients:
        raise PermissionDenied
    now = now or timezone.now()
    refused: ValidationError | None = None
    with transaction.atomic():
        patient = get_for_actor(Patient.objects.select_for_update().filter(merged_into__isnull=True), actor, patient_id)
        changed = identity_changes(patient=patient, identity=identity)
        if not changed:
            raise ValidationError({"__all__": [_("Nothing to correct: every field is as recorded.")]})
        try:
            _refuse_duplicate(actor=actor, patient=patient, identity=identity)
        except ValidationError as exc:
            audit_record(actor=actor, action="patient.duplicate_check", object_type="patient", object_ids=[patient.pk])
            refused = exc
        else:
            values = {name: getattr(patient, name) for name in PatientIdentity.__dataclass_fields__}
            values.update({name: getattr(identity, name) for name in changed})
            indexes = _index_values(patient.pharmacy_id, values)
            for name in changed:
                setattr(patient, name, values[name])
            for name, value in indexes.items():
                setattr(patient, name, value)
            patient.save(update_fields=[*changed, *indexes, "updated_at"])
            effects: dict[str, int] = {}
            for handler in IDENTITY_HANDLERS:
                for key, count in handler(actor=actor, patient=patient, fields=sorted(changed), now=now).items():
                    effects[key] = effects.get(key, 0) + count
            audit_record(
                actor=actor,
                action="patient.correct_identity",
                object_type="patient",
                object_ids=[patient.pk],
                detail={"fields": sorted(changed), **effects},  # names and counts, never a value
            )
    if refused is not None:
        raise refused
    return IdentityCorrection(patient=patient, fields=sorted(changed), effects=effects)
