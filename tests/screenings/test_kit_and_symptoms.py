"""Issue 15 items 3 and 5, the shared rules: kit lot and expiry, symptoms and onset, checked on every road (one service),
kept by corrections; an expired kit is refused and nothing is written."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from relais.intake.services import screening_correct, screening_intake
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.models import OutboxMessage
from tests.factories import screening_input


def _errors(owner: Any, patient: Any, **fields: Any) -> dict[str, list[str]]:
    before = (Screening.objects.count(), OutboxMessage.objects.count())
    with pytest.raises(ValidationError) as caught:
        screening_intake(actor=owner, data=screening_input(**fields), patient_id=patient.pk)
    assert (Screening.objects.count(), OutboxMessage.objects.count()) == before
    return caught.value.message_dict


def test_lot_expiry_and_symptoms_are_stored_and_kept_by_a_correction(owner: Any, patient: Any) -> None:
    today = timezone.localdate()
    data = screening_input(
        kit_lot="AB12-x/3", kit_expiry=today + timedelta(days=90), symptoms="yes", symptom_onset=today - timedelta(days=2)
    )
    recorded = screening_intake(actor=owner, data=data, patient_id=patient.pk).screening
    recorded.refresh_from_db()
    assert (recorded.kit_lot, recorded.kit_expiry, recorded.symptoms, recorded.symptom_onset) == (
        "AB12-x/3",
        today + timedelta(days=90),
        "yes",
        today - timedelta(days=2),
    )
    corrected = screening_correct(actor=owner, screening_id=recorded.pk, reason="misread", results={"sars-cov-2": RESULT_DETECTED})
    assert (corrected.kit_lot, corrected.kit_expiry, corrected.symptoms, corrected.symptom_onset) == (
        recorded.kit_lot,
        recorded.kit_expiry,
        recorded.symptoms,
        recorded.symptom_onset,
    )


def test_an_expired_kit_is_refused_with_its_date(owner: Any, patient: Any) -> None:
    yesterday = timezone.localdate() - timedelta(days=1)
    errors = _errors(owner, patient, kit_expiry=yesterday)
    assert list(errors) == ["kit_expiry"]
    assert "expired on" in errors["kit_expiry"][0]
    # Expiring today is still usable today.
    screening_intake(actor=owner, data=screening_input(kit_expiry=timezone.localdate()), patient_id=patient.pk)


@pytest.mark.parametrize(("lot", "problem"), [("L" * 21, "more than 20"), ("lot é", "characters"), ("a\nb", "characters")])
def test_a_lot_number_that_no_box_prints_is_refused(owner: Any, patient: Any, lot: str, problem: str) -> None:
    assert problem in _errors(owner, patient, kit_lot=lot)["kit_lot"][0]


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"symptoms": "maybe"}, "symptoms", "yes, no or unknown"),
        ({"symptoms": "no", "symptom_onset": date(2026, 1, 1)}, "symptom_onset", "only when"),
        ({"symptoms": "yes", "symptom_onset": timezone.localdate() + timedelta(days=1)}, "symptom_onset", "after the sampling"),
        ({"symptoms": "yes", "symptom_onset": timezone.localdate() - timedelta(days=400)}, "symptom_onset", "more than a year"),
    ],
)
def test_symptoms_and_onset_are_checked(owner: Any, patient: Any, fields: dict[str, Any], field: str, problem: str) -> None:
    assert problem in _errors(owner, patient, **fields)[field][0]


def test_the_record_form_takes_lot_expiry_and_symptoms(as_user: Any, owner: Any, patient: Any) -> None:
    client: Client = as_user(owner)
    today = timezone.localdate()
    form = {
        "device": "1232",
        "specimen_type": "258500001",
        "sampled_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "result_sars-cov-2": "260415000",
        "information_notice_given": "on",
        "kit_lot": "LOT42",
        "kit_expiry": (today - timedelta(days=3)).isoformat(),
        "symptoms": "yes",
        "symptom_onset": today.isoformat(),
    }
    refused = client.post(f"/patients/{patient.pk}/record/", form, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 200 and b"expired on" in refused.content
    assert not Screening.objects.exists()
    form["kit_expiry"] = (today + timedelta(days=30)).isoformat()
    assert client.post(f"/patients/{patient.pk}/record/", form).status_code == 302
    stored = Screening.objects.get()
    assert (stored.kit_lot, stored.symptoms, stored.symptom_onset) == ("LOT42", "yes", today)
