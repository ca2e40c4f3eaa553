from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from relais.intake.services import screening_correct, screening_record
from relais.screenings.catalogue import split_display
from relais.screenings.models import Device, Screening, ScreeningResult
from relais.screenings.vocab import RESULT_DETECTED, RESULT_NOT_DETECTED
from tests.factories import screening_input


def test_catalogue_is_loaded_from_the_eu_value_set(db: Any) -> None:
    assert Device.objects.count() == 88
    assert Device.objects.filter(active=True).count() == 86
    panbio = Device.objects.get(device_id="1232")
    assert panbio.manufacturer == "Abbott Rapid Diagnostics"
    assert panbio.name == "Panbio COVID-19 Ag Rapid Test"
    assert panbio.loinc_code == "94558-4"
    assert panbio.analytes == ["sars-cov-2"]


@pytest.mark.parametrize(
    ("display", "manufacturer", "name"),
    [
        (
            "ACON Laboratories, Inc, Flowflex SARS-CoV-2 Antigen rapid test",
            "ACON Laboratories, Inc",
            "Flowflex SARS-CoV-2 Antigen rapid test",
        ),
        ("AAZ-LMB, COVID-VIRO", "AAZ-LMB", "COVID-VIRO"),
        ("AESKU.DIAGNOSTICS GmbH & Co. KG, AESKU.RAPID SARS-CoV-2", "AESKU.DIAGNOSTICS GmbH & Co. KG", "AESKU.RAPID SARS-CoV-2"),
    ],
)
def test_display_split(display: str, manufacturer: str, name: str) -> None:
    assert split_display(display) == (manufacturer, name)


def test_record_stores_coded_results(screening: Any) -> None:
    result = ScreeningResult.objects.get(screening=screening)
    assert (result.analyte, result.loinc_code, result.result) == ("sars-cov-2", "94558-4", RESULT_NOT_DETECTED)
    assert screening.status == "final" and screening.is_current and screening.information_notice_given is True
    assert screening.identity_withheld is False


def _refused(field: str, owner: Any, patient_id: Any, **overrides: Any) -> str:
    count = Screening.objects.count()
    with pytest.raises(ValidationError) as exc:
        screening_record(actor=owner, patient_id=patient_id, data=screening_input(**overrides))
    assert Screening.objects.count() == count
    assert field in exc.value.message_dict, exc.value.message_dict
    return " ".join(exc.value.message_dict[field])


def test_future_sampling_time_refused(owner: Any, patient: Any) -> None:
    assert "future" in _refused("sampled_at", owner, patient.pk, sampled_at=timezone.now() + timedelta(hours=1))


def test_device_outside_catalogue_refused(owner: Any, patient: Any) -> None:
    assert "catalogue" in _refused("device", owner, patient.pk, device_id="99999")


def test_inactive_device_refused(owner: Any, patient: Any) -> None:
    inactive = Device.objects.filter(active=False).first()
    assert inactive is not None
    _refused("device", owner, patient.pk, device_id=inactive.device_id)


def test_patient_of_another_pharmacy_refused(stranger: Any, patient: Any) -> None:
    assert "pharmacy" in _refused("patient_id", stranger, patient.pk)


def test_missing_result_refused(owner: Any, patient: Any) -> None:
    _refused("result_sars-cov-2", owner, patient.pk, results={})
    _refused("results", owner, patient.pk, results={"sars-cov-2": RESULT_DETECTED, "rsv": RESULT_DETECTED})


def test_multiplex_device_takes_one_result_per_analyte(owner: Any, patient: Any) -> None:
    Device.objects.create(
        device_id="X-FLU-COV",
        manufacturer="Test",
        name="Combo",
        loinc_code="94558-4",
        analytes=["sars-cov-2", "influenza-a", "influenza-b"],
    )
    results = {"sars-cov-2": RESULT_NOT_DETECTED, "influenza-a": RESULT_DETECTED, "influenza-b": RESULT_NOT_DETECTED}
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(device_id="X-FLU-COV", results=results))
    stored = {r.analyte: (r.loinc_code, r.result) for r in screening.results.all()}
    assert stored["influenza-a"] == ("80382-5", RESULT_DETECTED)
    assert len(stored) == 3


def test_correction_keeps_the_original(owner: Any, colleague: Any, screening: Any) -> None:
    corrected = screening_correct(
        actor=colleague, screening_id=screening.pk, reason="read the wrong cassette", results={"sars-cov-2": RESULT_DETECTED}
    )
    screening.refresh_from_db()
    assert screening.results.get().result == RESULT_NOT_DETECTED  # original untouched
    assert not screening.is_current
    assert corrected.status == "corrected" and corrected.version == 2 and corrected.supersedes_id == screening.pk
    assert corrected.series_id == screening.series_id
    assert corrected.results.get().result == RESULT_DETECTED
    assert corrected.correction_reason == "read the wrong cassette"
    with pytest.raises(ValidationError):
        screening_correct(actor=owner, screening_id=screening.pk, reason="again", results={"sars-cov-2": RESULT_NOT_DETECTED})


def test_removal_is_a_new_version(owner: Any, screening: Any) -> None:
    removed = screening_correct(actor=owner, screening_id=screening.pk, reason="wrong patient", remove=True)
    assert removed.status == "removed" and removed.is_current
    with pytest.raises(ValidationError):
        screening_correct(actor=owner, screening_id=removed.pk, reason="x", remove=True)


def test_correction_needs_a_reason_and_a_change(owner: Any, screening: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        screening_correct(actor=owner, screening_id=screening.pk, reason=" ", results={"sars-cov-2": RESULT_NOT_DETECTED})
    assert {"reason", "__all__"} <= set(exc.value.message_dict) or "reason" in exc.value.message_dict
    assert Screening.objects.filter(series_id=screening.series_id).count() == 1


def test_stranger_cannot_correct(stranger: Any, screening: Any) -> None:
    with pytest.raises(Screening.DoesNotExist):
        screening_correct(actor=stranger, screening_id=screening.pk, reason="x", remove=True)


def test_web_record_and_correct(as_user: Any, owner: Any, patient: Any) -> None:
    client = as_user(owner)
    page = client.get(f"/patients/{patient.pk}/record/")
    assert page.status_code == 200
    sampled = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        f"/patients/{patient.pk}/record/",
        {
            "device": "1232",
            "specimen_type": "258500001",
            "sampled_at": sampled,
            "result_sars-cov-2": RESULT_NOT_DETECTED,
            "information_notice_given": "on",
        },
    )
    assert response.status_code == 302, response.content
    screening = Screening.objects.get(patient=patient)
    response = client.post(
        f"/screenings/{screening.pk}/correct/", {"action": "correct", "reason": "typo", "result_sars-cov-2": RESULT_DETECTED}
    )
    assert response.status_code == 302
    detail = client.get(response["Location"])
    assert b"v2" in detail.content


def test_web_errors_sit_next_to_the_field_and_change_nothing(as_user: Any, owner: Any, patient: Any) -> None:
    future = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = as_user(owner).post(
        f"/patients/{patient.pk}/record/",
        {
            "device": "1232",
            "specimen_type": "258500001",
            "sampled_at": future,
            "result_sars-cov-2": RESULT_NOT_DETECTED,
            "information_notice_given": "on",
        },
    )
    assert response.status_code == 200
    assert b'id="id_sampled_at_error"' in response.content
    assert not Screening.objects.filter(patient=patient).exists()
