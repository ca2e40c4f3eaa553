"""What follows a patient's identity correction (relais.patients.correction), in its transaction.

Every test of the patient still within retention gets a new version with the same results, status corrected: the
national platform is sent the corrected identity as a correction of the test (HL7 OBX-11/OBR-25 C, FHIR
``corrected``; it goes out after the version before it is settled, like any correction), the test's certificates
with the old name are revoked and one is issued with the new name, and the patient gets a new result link."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.certificates.services import certificate_reissue
from relais.notify.services import notify_for_screening
from relais.patients.models import Patient
from relais.screenings.models import Screening, ScreeningResult, ScreeningStatus
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.services import outbox_enqueue

REVOCATION_REASON = "identity_corrected"


def tests_within_retention(*, patient: Patient, now: datetime, lock: bool = True) -> list[Screening]:
    """The patient's current test versions whose identity is still kept (relais.retention's rule: sampled within the
    period, the positive period if the test was ever positive), not removed, not withheld from the platform."""
    days = settings.RELAIS_RETENTION
    cut_negative = now - timedelta(days=days["identities"])
    cut_positive = now - timedelta(days=days["identities_positive"])
    rows = Screening.objects.select_for_update(of=("self",)) if lock else Screening.objects.all()  # lock: about to add versions
    current = list(
        rows.filter(patient_id=patient.pk, is_current=True, identity_withheld=False)
        .exclude(status=ScreeningStatus.REMOVED)
        .filter(sampled_at__gt=min(cut_negative, cut_positive))
        .select_related("device", "pharmacy")
        .order_by("sampled_at")
    )
    positive = set(
        ScreeningResult.objects.filter(screening__series_id__in=[s.series_id for s in current], result=RESULT_DETECTED).values_list(
            "screening__series_id", flat=True
        )
    )
    return [s for s in current if s.sampled_at > cut_negative or (s.series_id in positive and s.sampled_at > cut_positive)]


def _new_version(*, actor: User, original: Screening, patient: Patient) -> tuple[Screening, dict[str, str]]:
    results = list(original.results.all())
    original.is_current = False
    original.save(update_fields=["is_current"])
    correction = Screening.objects.create(
        series_id=original.series_id,
        version=original.version + 1,
        supersedes=original,
        pharmacy_id=original.pharmacy_id,
        patient=patient,  # the corrected record, already in memory: its messages and certificate read the new name
        **original.carried_over(),
        status=ScreeningStatus.CORRECTED,
        correction_reason=_("The patient's identity was corrected."),
        recorded_by=actor,
    )
    ScreeningResult.objects.bulk_create(
        [ScreeningResult(screening=correction, analyte=r.analyte, loinc_code=r.loinc_code, result=r.result) for r in results]
    )
    return correction, {r.analyte: r.result for r in results}


def tests_after_identity_correction(*, actor: User, patient: Patient, fields: list[str], now: datetime) -> Mapping[str, int]:
    """Re-send, re-issue and notify for each test within retention (see the module's docstring). Counts by kind."""
    counts = {"tests_resent": 0, "certificates_revoked": 0, "certificates_issued": 0, "notifications": 0}
    for original in tests_within_retention(patient=patient, now=now):
        correction, results = _new_version(actor=actor, original=original, patient=patient)
        audit_record(
            actor=actor,
            action="screening.correct",
            object_type="screening",
            object_ids=[correction.pk, original.pk, patient.pk],
            detail={"cause": "identity", "fields": fields},
        )
        outbox_enqueue(screening=correction)
        revoked, certificate = certificate_reissue(
            series_id=original.series_id, screening=correction, results=results, reason=REVOCATION_REASON, now=now
        )
        notifications = notify_for_screening(actor=actor, screening=correction, now=now)
        counts["tests_resent"] += 1
        counts["certificates_revoked"] += revoked
        counts["certificates_issued"] += certificate is not None
        counts["notifications"] += len(notifications)
    return counts
