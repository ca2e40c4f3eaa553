"""Issue 11.2: one intake service for the web form, the API and CSV rows."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone, translation

from relais.certificates.models import Certificate
from relais.intake import effects
from relais.intake.services import screening_intake
from relais.notify.models import Notification
from relais.patients.forms import PatientForm
from relais.patients.identity import identity_from
from relais.screenings import csv_import
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED, RESULT_NOT_DETECTED
from relais.submissions import services as submissions
from relais.transfer.models import OutboxMessage
from tests.factories import _body, screening_input

ROOT = Path(__file__).resolve().parents[2]


def _form(sampled: str, result: str = RESULT_NOT_DETECTED) -> dict[str, str]:
    return {
        "device": "1232",
        "specimen_type": "258500001",
        "sampled_at": sampled,
        "result_sars-cov-2": result,
        "information_notice_given": "on",
    }


def test_web_form_does_not_record_the_same_test_twice(as_user: Any, owner: Any, patient: Any) -> None:
    client = as_user(owner)
    sampled = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    first = client.post(f"/patients/{patient.pk}/record/", _form(sampled))
    assert first.status_code == 302
    earlier = Screening.objects.get(patient=patient)
    again = client.post(f"/patients/{patient.pk}/record/", _form(sampled))  # a double click, or the back button
    assert again.status_code == 200
    assert b'id="duplicate"' in again.content and "déjà enregistré".encode() in again.content  # pages default to French
    assert f'href="/screenings/{earlier.pk}/"'.encode() in again.content
    assert Screening.objects.filter(patient=patient).count() == 1
    assert OutboxMessage.objects.count() == 1


def test_web_form_duplicate_with_another_result_points_to_the_correction(as_user: Any, owner: Any, patient: Any) -> None:
    client = as_user(owner)
    sampled = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    client.post(f"/patients/{patient.pk}/record/", _form(sampled))
    earlier = Screening.objects.get(patient=patient)
    again = client.post(f"/patients/{patient.pk}/record/", _form(sampled, RESULT_DETECTED))
    assert "résultat différent".encode() in again.content and f'href="/screenings/{earlier.pk}/correct/"'.encode() in again.content
    assert Screening.objects.filter(patient=patient).count() == 1


def test_same_duplicate_rule_on_every_road(client: Client, bearer: dict[str, str], owner: Any, patient: Any) -> None:
    data = screening_input()
    first = screening_intake(actor=owner, data=data, patient_id=patient.pk)
    again = screening_intake(actor=owner, data=data, patient_id=patient.pk)
    assert (first.is_duplicate, again.is_duplicate, again.screening.pk) == (False, True, first.screening.pk)


def test_effects_commit_with_the_screening_or_not_at_all(owner: Any, patient: Any, monkeypatch: Any) -> None:
    def broken(**kwargs: Any) -> None:
        effects.outbox_enqueue(screening=kwargs["screening"])
        raise RuntimeError("the certificate could not be stored")

    monkeypatch.setattr(effects, "screening_recorded", broken)
    with pytest.raises(RuntimeError):
        screening_intake(actor=owner, data=screening_input(), patient_id=patient.pk)
    assert not Screening.objects.exists() and not OutboxMessage.objects.exists()


def test_a_recorded_screening_carries_its_effects(owner: Any, patient: Any) -> None:
    outcome = screening_intake(actor=owner, data=screening_input(), patient_id=patient.pk)
    assert OutboxMessage.objects.filter(screening=outcome.screening).count() == 1
    assert Certificate.objects.filter(screening=outcome.screening).count() == 1
    assert Notification.objects.filter(screening=outcome.screening).count() == 2  # email and SMS


def test_csv_rows_are_parsed_once(owner: Any, monkeypatch: Any) -> None:
    parsed: list[int] = []
    real = csv_import._parse_row

    def counting(row_number: int, cells: dict[str, str], now: Any) -> Any:
        parsed.append(row_number)
        return real(row_number, cells, now)

    monkeypatch.setattr(csv_import, "_parse_row", counting)
    submission, _ = submissions.csv_submit(actor=owner, data=csv_import.example_csv().encode(), file_name="day.csv")
    assert parsed == [] and submission.total == 5  # the upload checks the file as a whole and counts its rows
    done = submissions.csv_process(submission=submission, owner="test")
    assert done.accepted == 5 and parsed == [2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01",
        b"last_name;first_names\nA;B\n",
        csv_import.template_csv().splitlines()[0].encode() + b"\n",
        csv_import.template_csv().encode() + b'x,"unclosed\n' * 2,
    ],
)
def test_a_bad_file_is_refused_at_upload_as_before(owner: Any, data: bytes) -> None:
    expected = csv_import.parse_csv(data).file_errors
    assert expected == csv_import.check_csv(data).file_errors
    if expected:
        with pytest.raises(ValidationError):
            submissions.csv_submit(actor=owner, data=data, file_name="bad.csv")


IDENTITIES = [
    ({"last_name": "---"}, "last_name"),
    ({"nir": "194037512000591"}, "nir"),  # a man's NIR for a woman
    ({"email": "not-an-address"}, "email"),
    ({"postcode": "7500"}, "postcode"),
    ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
]


@pytest.mark.parametrize(("change", "field"), IDENTITIES)
def test_one_identity_normaliser_for_form_api_and_csv(
    client: Client, bearer: dict[str, str], owner: Any, change: dict[str, str], field: str
) -> None:
    person = {"last_name": "MARTIN", "first_names": "Léa", "sex": "F", "date_of_birth": "1994-03-12", "country": "FR", **change}
    api = client.post("/api/v1/screenings", json.dumps(_body(patient=person)), content_type="application/json", **bearer).json()
    with translation.override("en"):  # the request above left its own language active
        with pytest.raises(ValidationError) as exc:
            identity_from(person)
        expected = exc.value.message_dict[field]
        assert [f["message"] for f in api["fields"] if f["field"] == f"patient.{field}"] == expected
        form = PatientForm(person)
        assert not form.is_valid() and form.errors[field] == expected
        header = ",".join(csv_import.COLUMN_NAMES)
        row = {name: "" for name in csv_import.COLUMN_NAMES} | person | {"device_id": "1232", "result": "negative"}
        row |= {"sampled_at": timezone.localtime().strftime("%d/%m/%Y %H:%M"), "information_notice": "yes"}
        errors = csv_import.parse_csv(f"{header}\n{','.join(row[c] for c in csv_import.COLUMN_NAMES)}\n".encode()).errors
    assert [e.column for e in errors] == [field] and all(message in errors[0].message for message in expected)


def test_screenings_imports_no_app_above_it() -> None:
    above = ("relais.certificates", "relais.notify", "relais.transfer", "relais.submissions", "relais.api", "relais.intake")
    for name in ("services", "models", "selectors", "inputs"):
        tree = ast.parse((ROOT / "relais" / "screenings" / f"{name}.py").read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m.startswith(above)], name
