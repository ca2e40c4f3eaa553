"""Identity correction (issue 15, item 1): the service, what follows it (re-sent tests, re-issued certificates, patient
messages) and the page, for the owner, a colleague and a stranger."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.certificates.models import Certificate
from relais.certificates.services import signer
from relais.certificates.verify import verify_hc1
from relais.core import blind_index
from relais.intake.services import screening_correct, screening_record
from relais.notify.models import Notification, NotificationKind
from relais.patients import selectors
from relais.patients.correction import patient_correct_identity
from relais.patients.models import Patient
from relais.patients.services import patient_register
from relais.screenings.models import Screening, ScreeningStatus
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.delivery import build_payload
from relais.transfer.formats import fhir, hl7v2
from relais.transfer.models import OutboxMessage, TransferStatus
from tests.factories import identity, screening_input

NEW_NAME = {"last_name": "DURAND", "first_names": "Camille Marie"}


def corrected(patient: Patient, **changes: Any) -> Any:
    values = {name: getattr(patient, name) for name in identity().__dataclass_fields__}
    values.update(changes)
    return identity(**values)


def _sampled_days_ago(screening: Screening, days: int) -> None:
    Screening.objects.filter(series_id=screening.series_id).update(sampled_at=timezone.now() - timedelta(days=days))


@pytest.fixture
def tests_of(owner: Any, patient: Any) -> dict[str, Screening]:
    """Four tests: today's, an old negative past retention, an old positive still kept, one already removed."""
    days = settings.RELAIS_RETENTION["identities"]
    base = timezone.now() - timedelta(hours=3)
    today = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(sampled_at=base))
    old = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(sampled_at=base - timedelta(minutes=5)))
    positive = screening_record(
        actor=owner,
        patient_id=patient.pk,
        data=screening_input(sampled_at=base - timedelta(minutes=10), results={"sars-cov-2": RESULT_DETECTED}),
    )
    removed = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(sampled_at=base - timedelta(minutes=15)))
    screening_correct(actor=owner, screening_id=removed.pk, reason="recorded twice", remove=True)
    _sampled_days_ago(old, days + 2)
    _sampled_days_ago(positive, days + 2)  # within the positive period (identities_positive) still
    return {"today": today, "old": old, "positive": positive, "removed": removed}


def _current(screening: Screening) -> Screening:
    return Screening.objects.get(series_id=screening.series_id, is_current=True)


def test_fields_and_indexes_change_and_the_patient_is_found_under_the_new_name(owner: Any, patient: Any) -> None:
    dob = patient.date_of_birth
    old_indexes = (patient.name_dob_index, patient.identity_index)
    result = patient_correct_identity(
        actor=owner, patient_id=patient.pk, identity=corrected(patient, last_name="LEROY", first_names="Inès")
    )
    assert result.fields == ["first_names", "last_name"]
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.last_name, stored.first_names) == ("LEROY", "Inès")
    assert stored.name_dob_index == blind_index.name_dob_index(pharmacy_id=owner.tenant_id, last_name="LEROY", date_of_birth=dob)
    assert stored.identity_index == blind_index.identity_index(
        pharmacy_id=owner.tenant_id, last_name="LEROY", first_names="Inès", date_of_birth=dob
    )
    assert old_indexes[0] != stored.name_dob_index and old_indexes[1] != stored.identity_index
    assert [p.pk for p in selectors.patient_search(actor=owner, last_name="leroy", date_of_birth=dob)] == [patient.pk]
    assert selectors.patient_search(actor=owner, last_name="DURAND-TESTEUR", date_of_birth=dob) == []


def test_nir_sex_birth_date_and_address_are_corrected_with_the_nir_index(owner: Any) -> None:
    patient = patient_register(actor=owner, identity=identity(nir=""))
    changes = {
        "sex": "M",
        "date_of_birth": date(1994, 3, 13),
        "nir": "194037512000544",
        "address_line": "3 place du Marché",
        "postcode": "69001",
        "city": "Lyon",
    }
    result = patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient, **changes))
    assert result.fields == sorted(changes)
    stored = Patient.objects.get(pk=patient.pk)
    assert {name: getattr(stored, name) for name in changes} == changes
    assert stored.nir_index == blind_index.nir_index(pharmacy_id=owner.tenant_id, nir="194037512000544")
    assert [p.pk for p in selectors.patient_search(actor=owner, nir="194037512000544")] == [patient.pk]


def test_the_audit_event_names_fields_never_values(owner: Any, patient: Any, tests_of: dict[str, Screening]) -> None:
    patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient, **NEW_NAME))
    event = AuditEvent.objects.get(action="patient.correct_identity")
    assert event.object_ids == [str(patient.pk)]
    assert event.detail["fields"] == ["first_names", "last_name"]
    assert event.detail["tests_resent"] == 2
    text = json.dumps(event.detail) + json.dumps(event.object_ids)
    for value in ("DURAND", "Camille", "TESTEUR", "Marie"):
        assert value not in text


def test_each_test_within_retention_is_sent_again_as_a_correction(owner: Any, patient: Any, tests_of: dict[str, Screening]) -> None:
    before = {key: OutboxMessage.objects.filter(series_id=s.series_id).count() for key, s in tests_of.items()}
    result = patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient, **NEW_NAME))
    assert result.effects["tests_resent"] == 2
    after = {key: OutboxMessage.objects.filter(series_id=s.series_id).count() for key, s in tests_of.items()}
    assert {key: after[key] - before[key] for key in after} == {"today": 1, "old": 0, "positive": 1, "removed": 0}
    for key in ("today", "positive"):
        version = _current(tests_of[key])
        assert version.status == ScreeningStatus.CORRECTED and version.version == 2
        assert [(r.analyte, r.result) for r in version.results.all()] == [(r.analyte, r.result) for r in tests_of[key].results.all()]
        message = OutboxMessage.objects.get(screening=version)
        assert message.status == TransferStatus.PENDING and message.version == 2
        # What the receiver gets: the corrected name, the same placer order number (series), status corrected.
        payload = build_payload(message, version)
        assert payload.patient is not None and payload.patient.last_name == "DURAND"
        text = hl7v2.render_oru_r01(payload)
        segments = {line.split("|")[0]: line.split("|") for line in text.split("\r") if line}
        assert segments["PID"][5].startswith("DURAND^Camille Marie")
        assert segments["OBX"][11] == "C" and segments["OBR"][25] == "C"
        assert segments["OBR"][2].split("^")[0] == str(version.series_id)
        bundle = json.loads(fhir.render_bundle(payload))
        statuses = {e["resource"]["resourceType"]: e["resource"].get("status") for e in bundle["entry"]}
        assert statuses["Observation"] == "corrected" and statuses["DiagnosticReport"] == "corrected"
    assert _current(tests_of["old"]).version == 1
    assert _current(tests_of["removed"]).status == ScreeningStatus.REMOVED


def test_certificates_with_the_old_name_are_revoked_and_reissued(owner: Any, patient: Any, tests_of: dict[str, Screening]) -> None:
    old_certificate = Certificate.objects.get(screening=tests_of["today"])
    patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient, **NEW_NAME))
    old_certificate.refresh_from_db()
    assert old_certificate.revoked_at is not None and old_certificate.revocation_reason == "identity_corrected"
    for key in ("today", "positive"):
        live = Certificate.objects.get(series_id=tests_of[key].series_id, revoked_at__isnull=True)
        assert live.screening_id == _current(tests_of[key]).pk
        name = verify_hc1(live.hc1, certificate=signer().certificate, at=timezone.now())["nam"]
        assert (name["fn"], name["gn"]) == ("DURAND", "Camille Marie")
    # A test past retention keeps what it had: nothing is re-issued for it.
    assert Certificate.objects.filter(series_id=tests_of["old"].series_id).count() == 1


def test_the_patient_is_told_with_a_new_link(owner: Any, patient: Any, tests_of: dict[str, Screening]) -> None:
    patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient, **NEW_NAME))
    version = _current(tests_of["today"])
    queued = Notification.objects.filter(screening=version)
    assert {n.channel for n in queued} == {"email", "sms"}
    assert all(n.kind == NotificationKind.DETAILS_CORRECTED and n.link_url for n in queued)
    assert not Notification.objects.filter(screening__series_id=tests_of["old"].series_id, screening__version=2).exists()


def test_no_contact_consented_means_no_message(owner: Any) -> None:
    patient = patient_register(actor=owner, identity=identity(phone="", email=""))
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    result = patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient, **NEW_NAME))
    assert result.effects["tests_resent"] == 1 and result.effects["notifications"] == 0


def test_a_correction_that_duplicates_another_patient_is_refused_naming_the_field(owner: Any, patient: Any) -> None:
    other = patient_register(actor=owner, identity=identity(last_name="MARTIN", nir="", phone="", email=""))
    with pytest.raises(ValidationError) as caught:
        patient_correct_identity(actor=owner, patient_id=other.pk, identity=corrected(other, last_name="DURAND-TESTEUR"))
    assert "last_name" in caught.value.message_dict
    assert "last name, first names and date of birth" in caught.value.message_dict["last_name"][0]
    with pytest.raises(ValidationError) as caught:
        patient_correct_identity(actor=owner, patient_id=other.pk, identity=corrected(other, nir=patient.nir))
    assert "NIR" in caught.value.message_dict["nir"][0]
    assert Patient.objects.get(pk=other.pk).last_name == "MARTIN"
    assert not AuditEvent.objects.filter(action="patient.correct_identity").exists()
    assert AuditEvent.objects.filter(action="patient.duplicate_check", object_ids=[str(other.pk)]).count() == 2


def test_nothing_to_correct_and_a_stranger_change_nothing(owner: Any, stranger: Any, patient: Any) -> None:
    with pytest.raises(ValidationError):
        patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient))
    with pytest.raises(Patient.DoesNotExist):
        patient_correct_identity(actor=stranger, patient_id=patient.pk, identity=corrected(patient, **NEW_NAME))
    assert Patient.objects.get(pk=patient.pk).last_name == "DURAND-TESTEUR"
    assert not AuditEvent.objects.filter(action="patient.correct_identity").exists()
