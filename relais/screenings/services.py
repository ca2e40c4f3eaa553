"""Recording and correcting screenings. One transaction per change, audited in it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.certificates.services import certificate_issue, certificate_revoke_series
from relais.notify.services import notify_for_screening
from relais.patients.models import Patient
from relais.screenings.models import Device, Screening, ScreeningResult, ScreeningStatus
from relais.screenings.vocab import ANALYTES, RESULTS, SPECIMENS
from relais.transfer.services import outbox_enqueue

CLOCK_SKEW = timedelta(minutes=2)
MAX_AGE = timedelta(days=30)


@dataclass(frozen=True)
class ScreeningInput:
    device_id: str
    specimen_type: str
    sampled_at: datetime
    results: dict[str, str]  # analyte code -> SNOMED result code
    information_notice_given: bool  # the pharmacist gave the patient the information notice: required to record


def _check_input(data: ScreeningInput, *, now: datetime) -> Device:
    errors: dict[str, list[str]] = {}
    if data.information_notice_given is not True:
        errors["information_notice_given"] = [_("Give the patient the information notice, then confirm that you did.")]
    device = Device.objects.filter(device_id=str(data.device_id).strip(), active=True).first()
    if device is None:
        errors["device"] = [
            _("Device %(id)s is not in the EU catalogue of approved rapid tests: pick one from the list.") % {"id": data.device_id}
        ]
    if data.specimen_type not in SPECIMENS:
        errors["specimen_type"] = [_("Choose a specimen type from the list.")]
    if timezone.is_naive(data.sampled_at):
        errors["sampled_at"] = [_("The sampling time needs a time zone.")]
    elif data.sampled_at > now + CLOCK_SKEW:
        errors["sampled_at"] = [_("The sampling time is in the future: check the date and time.")]
    elif data.sampled_at < now - MAX_AGE:
        errors["sampled_at"] = [_("The sampling time is more than 30 days ago: check the date.")]
    if device is not None:
        for analyte in device.analytes:
            if data.results.get(analyte) not in RESULTS:
                errors[f"result_{analyte}"] = [_("Choose the result for %(analyte)s.") % {"analyte": ANALYTES[analyte].label}]
        unknown = set(data.results) - set(device.analytes)
        if unknown:
            errors["results"] = [_("This device does not test for %(names)s.") % {"names": ", ".join(sorted(unknown))}]
    if errors:
        raise ValidationError(errors)
    assert device is not None
    return device


def _save_results(screening: Screening, device: Device, results: dict[str, str]) -> None:
    ScreeningResult.objects.bulk_create(
        ScreeningResult(
            screening=screening,
            analyte=analyte,
            loinc_code=ANALYTES[analyte].rapid_antigen_loinc if analyte != "sars-cov-2" else device.loinc_code,
            result=results[analyte],
        )
        for analyte in device.analytes
    )


def screening_record(*, actor: User, patient_id: uuid.UUID | str, data: ScreeningInput, now: datetime | None = None) -> Screening:
    if not actor.sees_patients:
        raise PermissionDenied
    now = now or timezone.now()
    with transaction.atomic():
        patient = Patient.objects.filter(pk=patient_id, pharmacy_id=actor.tenant_id).first()
        errors: dict[str, list[str]] = {}
        if patient is None:
            errors["patient"] = [_("This patient is not registered at your pharmacy: register or search them first.")]
        try:
            device = _check_input(data, now=now)
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if errors or patient is None:
            raise ValidationError(errors)
        screening = Screening.objects.create(
            pharmacy_id=actor.tenant_id,
            patient=patient,
            device=device,
            specimen_type=data.specimen_type,
            sampled_at=data.sampled_at,
            information_notice_given=True,
            recorded_by=actor,
        )
        _save_results(screening, device, data.results)
        outbox_enqueue(screening=screening)
        if actor.pharmacy is not None and actor.pharmacy_id == screening.pharmacy_id:
            screening.pharmacy = actor.pharmacy  # cached on the actor: no query per screening in a batch
        certificate_issue(screening=screening, results=data.results, now=now)
        notify_for_screening(actor=actor, screening=screening, now=now, fresh=True)
        audit_record(
            actor=actor,
            action="screening.create",
            object_type="screening",
            object_ids=[screening.pk, screening.patient_id],
        )
    return screening


def screening_correct(
    *,
    actor: User,
    screening_id: uuid.UUID | str,
    reason: str,
    results: dict[str, str] | None = None,
    remove: bool = False,
) -> Screening:
    """Add a corrected (or removed) version; the original row keeps what was recorded."""
    if not actor.sees_patients:
        raise PermissionDenied
    with transaction.atomic():
        original = Screening.objects.select_for_update().select_related("device").get(pk=screening_id, pharmacy_id=actor.tenant_id)
        errors: dict[str, list[str]] = {}
        if not original.is_current or original.status == ScreeningStatus.REMOVED:
            errors["__all__"] = [_("This result was already corrected or removed: open its latest version.")]
        if not reason.strip():
            errors["reason"] = [_("Say why the result is corrected or removed.")]
        new_results = {r.analyte: r.result for r in original.results.all()}
        if not remove:
            results = results or {}
            for analyte in original.device.analytes:
                if results.get(analyte) not in RESULTS:
                    errors[f"result_{analyte}"] = [_("Choose the corrected result for %(analyte)s.") % {"analyte": ANALYTES[analyte].label}]
            if not errors and results == new_results:
                errors["__all__"] = [_("The corrected result is the same as the recorded one.")]
            new_results = results
        if errors:
            raise ValidationError(errors)
        original.is_current = False
        original.save(update_fields=["is_current"])
        correction = Screening.objects.create(
            series_id=original.series_id,
            version=original.version + 1,
            supersedes=original,
            pharmacy_id=original.pharmacy_id,
            patient_id=original.patient_id,
            device=original.device,
            specimen_type=original.specimen_type,
            sampled_at=original.sampled_at,
            information_notice_given=original.information_notice_given,
            identity_withheld=original.identity_withheld,  # a test recorded under the old "no consent" stays pseudonymous
            status=ScreeningStatus.REMOVED if remove else ScreeningStatus.CORRECTED,
            correction_reason=reason.strip(),
            recorded_by=actor,
        )
        _save_results(correction, original.device, new_results)
        outbox_enqueue(screening=correction)
        # The earlier certificate says something no longer true: revoke it, then issue one for the corrected result if allowed.
        certificate_revoke_series(series_id=original.series_id, reason="removed" if remove else "corrected")
        certificate_issue(screening=correction, results=new_results)
        notify_for_screening(actor=actor, screening=correction)
        audit_record(
            actor=actor,
            action="screening.remove" if remove else "screening.correct",
            object_type="screening",
            object_ids=[correction.pk, original.pk, original.patient_id],
        )
    return correction
