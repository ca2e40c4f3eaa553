"""Recording a screening, whatever brought it: the web form, the API (one test or a batch) and CSV rows all call
``screening_intake``. One validation, one patient matching, one duplicate check, one set of effects, one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core.tenancy import for_actor, get_for_actor
from relais.intake import effects
from relais.patients.models import Patient
from relais.patients.services import PatientIdentity, patient_resolve
from relais.screenings.inputs import ScreeningInput
from relais.screenings.models import Device, Screening, ScreeningStatus
from relais.screenings.services import screening_check, screening_create, screening_version_add

ACCEPTED = "accepted"  # the values of submissions.models.ItemStatus
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class IntakeOutcome:
    status: str  # ACCEPTED or DUPLICATE
    screening: Screening  # the new screening, or the earlier one this submission duplicates
    patient_id: uuid.UUID
    note: str = ""
    same_result: bool = True  # for a duplicate: whether the earlier test has the submitted result

    @property
    def is_duplicate(self) -> bool:
        return self.status == DUPLICATE


def _patient_by_id(*, actor: User, patient_id: uuid.UUID | str) -> Patient | None:
    patient = for_actor(Patient, actor).filter(pk=patient_id).first()
    if patient is not None and patient.merged_into_id is not None:  # the pharmacy found it to be another's duplicate: follow it
        patient = get_for_actor(Patient, actor, patient.merged_into_id)
    return patient


def earlier_duplicate(*, pharmacy_id: uuid.UUID, patient_id: uuid.UUID, data: ScreeningInput) -> Screening | None:
    """A current screening of the same patient with the same device and sampling time: the same test sent twice."""
    return (
        Screening.objects.filter(
            pharmacy_id=pharmacy_id,
            patient_id=patient_id,
            device_id=str(data.device_id).strip(),
            sampled_at=data.sampled_at,
            is_current=True,
        )
        .exclude(status=ScreeningStatus.REMOVED)
        .prefetch_related("results")
        .first()
    )


def _checked(*, actor: User, data: ScreeningInput, patient_id: uuid.UUID | str | None, now: datetime) -> tuple[Device, Patient | None]:
    """Every problem with the input at once; the patient named by id, if one was."""
    errors: dict[str, list[str]] = {}
    device = None
    try:
        device = screening_check(data, now=now)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    patient = None
    if patient_id is not None:
        patient = _patient_by_id(actor=actor, patient_id=patient_id)
        if patient is None:
            errors["patient_id"] = [_("No patient with this id at your pharmacy: register the patient first.")]
    if errors:
        raise ValidationError(errors)
    assert device is not None
    return device, patient


def screening_intake(
    *,
    actor: User,
    data: ScreeningInput,
    identity: PatientIdentity | None = None,
    patient_id: uuid.UUID | str | None = None,
    now: datetime | None = None,
) -> IntakeOutcome:
    """Record a screening for a patient given by identity (matched or registered) or by id, with its effects.

    A test already recorded (same patient, device and sampling time) is answered with that test, flagged, not recorded
    twice. All or nothing: a refused screening leaves no new patient behind."""
    if not actor.sees_patients:
        raise PermissionDenied
    if (identity is None) == (patient_id is None):
        raise ValueError("give exactly one of identity and patient_id")
    now = now or timezone.now()
    with transaction.atomic():
        device, patient = _checked(actor=actor, data=data, patient_id=patient_id, now=now)
        new = False
        if patient is None:
            assert identity is not None
            # The same person's record, or a new one (flagged when a look-alike exists): never another person's.
            resolution = patient_resolve(actor=actor, identity=identity)
            patient, new = resolution.patient, resolution.created
        if connection.vendor == "postgresql" and not new:
            Patient.objects.select_for_update().filter(pk=patient.pk).first()  # serialise submissions for one patient
        earlier = None if new else earlier_duplicate(pharmacy_id=actor.tenant_id, patient_id=patient.pk, data=data)
        if earlier is not None:
            same = {r.analyte: r.result for r in earlier.results.all()} == dict(data.results)
            note = (
                _("Already recorded: same patient, device and sampling time. Nothing was added.")
                if same
                else _("Already recorded with a different result: to change it, send a correction of that test.")
            )
            audit_record(actor=actor, action="screening.duplicate", object_type="screening", object_ids=[earlier.pk, patient.pk])
            return IntakeOutcome(DUPLICATE, earlier, patient.pk, note, same_result=same)
        screening = screening_create(actor=actor, patient=patient, device=device, data=data)
        effects.screening_recorded(actor=actor, screening=screening, results=data.results, now=now)
    return IntakeOutcome(ACCEPTED, screening, patient.pk)


def screening_record(*, actor: User, patient_id: uuid.UUID | str, data: ScreeningInput, now: datetime | None = None) -> Screening:
    """screening_intake for a registered patient, when only a new test will do (seeds, load generators, tests)."""
    outcome = screening_intake(actor=actor, data=data, patient_id=patient_id, now=now)
    if outcome.is_duplicate:
        raise ValidationError({"__all__": [outcome.note]})
    return outcome.screening


def screening_correct(
    *,
    actor: User,
    screening_id: uuid.UUID | str,
    reason: str,
    results: dict[str, str] | None = None,
    remove: bool = False,
) -> Screening:
    """Add a corrected (or removed) version with its effects; the original row keeps what was recorded."""
    with transaction.atomic():
        original, correction, new_results = screening_version_add(
            actor=actor, screening_id=screening_id, reason=reason, results=results, remove=remove
        )
        effects.screening_corrected(actor=actor, original=original, correction=correction, results=new_results, removed=remove)
    return correction
