"""Recording and correcting screenings: the screening rows, their results and their audit event, nothing more.

What a recorded, corrected or removed screening sets off (outbox row, certificate, patient messages) is attached by
relais.intake, in the same transaction: callers record through relais.intake.services, never through this module."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core import bulk
from relais.core.tenancy import get_for_actor
from relais.patients.models import Patient
from relais.screenings.inputs import MAX_SYMPTOM_DAYS, ScreeningInput, kit_lot_problem, sampling_time_problem
from relais.screenings.models import Device, Screening, ScreeningResult, ScreeningStatus
from relais.screenings.vocab import ANALYTES, RESULTS, SPECIMENS, SYMPTOM_YES, SYMPTOMS

__all__ = ["ScreeningInput", "screening_build", "screening_check", "screening_version_add"]


def active_devices(device_ids: Iterable[str]) -> dict[str, Device]:
    """The catalogue devices among ``device_ids`` (one query for a whole batch), by id."""
    wanted = {str(i).strip() for i in device_ids}
    # Unsorted: compiling the catalogue's default order was a third of this query's cost.
    return {d.device_id: d for d in Device.objects.filter(device_id__in=wanted, active=True).order_by()}


def screening_check(data: ScreeningInput, *, now: datetime, devices: Mapping[str, Device] | None = None) -> Device:
    """The device of a valid input; ValidationError naming every field in error otherwise.

    ``devices``: the active devices already read for a batch (see active_devices); otherwise this one is read."""
    errors: dict[str, list[str]] = {}
    if data.information_notice_given is not True:
        errors["information_notice_given"] = [_("Give the patient the information notice, then confirm that you did.")]
    device_id = str(data.device_id).strip()
    if devices is None:
        devices = active_devices([device_id])
    device = devices.get(device_id)
    if device is None:
        errors["device"] = [
            _("Device %(id)s is not in the EU catalogue of approved rapid tests: pick one from the list.") % {"id": data.device_id}
        ]
    if data.specimen_type not in SPECIMENS:
        errors["specimen_type"] = [_("Choose a specimen type from the list.")]
    if timezone.is_naive(data.sampled_at):
        errors["sampled_at"] = [_("The sampling time needs a time zone.")]
    elif (problem := sampling_time_problem(data.sampled_at, now=now)) == "future":
        errors["sampled_at"] = [_("The sampling time is in the future: check the date and time.")]
    elif problem == "too_old":
        errors["sampled_at"] = [_("The sampling time is more than 30 days ago: check the date.")]
    errors.update(_kit_and_symptom_errors(data))
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


def _kit_and_symptom_errors(data: ScreeningInput) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    sampled_on = timezone.localdate(data.sampled_at) if timezone.is_aware(data.sampled_at) else data.sampled_at.date()
    if (lot_problem := kit_lot_problem(data.kit_lot)) == "too_long":
        errors["kit_lot"] = [_("The lot number has more than 20 characters: type it as printed on the box.")]
    elif lot_problem == "characters":
        errors["kit_lot"] = [_("The lot number holds characters a kit's lot cannot hold: type it as printed on the box.")]
    if data.kit_expiry is not None and data.kit_expiry < sampled_on:
        errors["kit_expiry"] = [
            _("This kit expired on %(date)s: use a kit that has not expired (an expired kit's result is not valid).")
            % {"date": formats.date_format(data.kit_expiry, "SHORT_DATE_FORMAT")}
        ]
    if data.symptoms not in SYMPTOMS and data.symptoms != "":
        errors["symptoms"] = [_("Say whether the patient has symptoms: yes, no or unknown.")]
    if data.symptom_onset is not None:
        if data.symptoms != SYMPTOM_YES:
            errors["symptom_onset"] = [_("Give an onset date only when the patient has symptoms.")]
        elif data.symptom_onset > sampled_on:
            errors["symptom_onset"] = [_("The symptoms' onset is after the sampling date: check the date.")]
        elif (sampled_on - data.symptom_onset).days > MAX_SYMPTOM_DAYS:
            errors["symptom_onset"] = [_("The symptoms' onset is more than a year before the test: check the date.")]
    return errors


def _result_rows(screening: Screening, device: Device, results: dict[str, str]) -> list[ScreeningResult]:
    return [
        bulk.new(
            ScreeningResult,
            screening=screening,
            analyte=analyte,
            loinc_code=ANALYTES[analyte].rapid_antigen_loinc if analyte != "sars-cov-2" else device.loinc_code,
            result=results[analyte],
        )
        for analyte in device.analytes
    ]


def _save_results(screening: Screening, device: Device, results: dict[str, str]) -> None:
    ScreeningResult.objects.bulk_create(_result_rows(screening, device, results))


def _require_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record screenings through relais.intake.services: its effects belong in the same transaction")


def screening_build(*, actor: User, patient: Patient, device: Device, data: ScreeningInput) -> tuple[Screening, list[ScreeningResult]]:
    """A checked screening (see screening_check) and its result rows, not yet saved: relais.intake writes them, in bulk
    for a batch, with the screening.create audit event, in the transaction of its effects (built before it opens)."""
    if not actor.sees_patients or patient.pharmacy_id != actor.tenant_id:
        raise PermissionDenied
    screening = bulk.new(
        Screening,
        pharmacy_id=actor.tenant_id,
        patient=patient,
        device=device,
        **data.recorded_fields(),
        information_notice_given=True,
        recorded_by=actor,
    )
    if actor.pharmacy is not None and actor.pharmacy_id == screening.pharmacy_id:
        screening.pharmacy = actor.pharmacy  # cached on the actor: no query per screening in a batch
    return screening, _result_rows(screening, device, data.results)


def screening_version_add(
    *,
    actor: User,
    screening_id: uuid.UUID | str,
    reason: str,
    results: dict[str, str] | None = None,
    remove: bool = False,
) -> tuple[Screening, Screening, dict[str, str]]:
    """Add a corrected (or removed) version; the original row keeps what was recorded. (original, new version, its results)"""
    _require_transaction()
    original = get_for_actor(Screening.objects.select_for_update().select_related("device"), actor, screening_id)
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
        **original.carried_over(),
        status=ScreeningStatus.REMOVED if remove else ScreeningStatus.CORRECTED,
        correction_reason=reason.strip(),
        recorded_by=actor,
    )
    _save_results(correction, original.device, new_results)
    audit_record(
        actor=actor,
        action="screening.remove" if remove else "screening.correct",
        object_type="screening",
        object_ids=[correction.pk, original.pk, original.patient_id],
    )
    return original, correction, new_results
