"""Issue 16: the pharmacist records whether the identity was checked on an identity document (FR Core identity
reliability) on every road in, and gives the passport's Latin spelling for a name no ICAO table transliterates."""

from __future__ import annotations

import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from relais.intake.services import screening_record
from relais.patients.correction import CORRECTABLE, patient_correct_identity
from relais.patients.forms import PatientForm
from relais.patients.models import Patient
from relais.patients.services import PatientIdentity
from relais.prereg import services as prereg
from relais.screenings import csv_import
from relais.screenings.models import Screening
from relais.submissions import services as submissions
from relais.transfer.delivery import build_payload
from tests.factories import identity, screening_input

FORM = {"first_names": "Alex", "sex": "U", "date_of_birth": "1980-01-01", "country": "FR"}


def _register(client: Client, **values: str) -> Any:
    return client.post("/patients/new/", {**FORM, **values}, HTTP_ACCEPT_LANGUAGE="en")


def test_the_registration_form_records_the_check(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    page = client.get("/patients/new/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "I checked the identity on an identity document (ID card, passport, residence permit)" in page
    assert _register(client, last_name="VERIFIE", identity_verified="on").status_code == 302
    assert _register(client, last_name="NONVERIFIE").status_code == 302
    by_name = {p.last_name: p.identity_verified for p in Patient.objects.all()}
    assert by_name == {"VERIFIE": True, "NONVERIFIE": False}


def test_a_name_no_table_transliterates_needs_its_latin_spelling(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    blank = PatientForm()
    assert blank.fields["latin_last_name"].hidden_until_needed  # not shown for a Latin-script name
    refused = _register(client, last_name="王", first_names="小明")
    assert refused.status_code == 200
    page = refused.content.decode()
    assert "enter the Latin spelling from the passport" in page and 'name="latin_last_name"' in page
    assert "id_latin_last_name_error" in page and 'type="hidden" name="latin_last_name"' not in page
    assert not Patient.objects.exists()
    bad = _register(client, last_name="王", first_names="小明", latin_last_name="王", latin_first_names="XIAOMING")
    assert bad.status_code == 200 and "Latin letters A-Z only" in bad.content.decode()
    done = _register(client, last_name="王", first_names="小明", latin_last_name="WANG", latin_first_names="XIAOMING")
    assert done.status_code == 302
    patient = Patient.objects.get()
    assert (patient.latin_last_name, patient.latin_first_names) == ("WANG", "XIAOMING")
    # Greek, Cyrillic and Arabic have ICAO tables: no Latin spelling asked.
    assert _register(client, last_name="Παπαδόπουλος", first_names="Νίκος").status_code == 302


def test_the_api_takes_it_optional_and_the_payload_carries_it(client: Client, bearer: dict[str, str], owner: Any) -> None:
    person = {"last_name": "APIVERIF", "first_names": "Alex", "sex": "U", "date_of_birth": "1980-01-01", "identity_verified": True}
    created = client.post("/api/v1/patients", json.dumps(person), content_type="application/json", **bearer)
    assert created.status_code == 201, created.content
    patient = Patient.objects.get(pk=created.json()["patient_id"])
    assert patient.identity_verified is True
    other = {**person, "last_name": "APISANS"}
    del other["identity_verified"]
    created = client.post("/api/v1/patients", json.dumps(other), content_type="application/json", **bearer)
    assert Patient.objects.get(pk=created.json()["patient_id"]).identity_verified is None
    wrong = client.post("/api/v1/patients", json.dumps({**person, "identity_verified": "yes"}), content_type="application/json", **bearer)
    assert wrong.status_code == 422
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    loaded = Screening.objects.select_related("patient", "pharmacy", "device", "recorded_by").get(pk=screening.pk)
    payload = build_payload(screening.outbox.get(), loaded)
    assert payload.identity_verified is True and payload.patient is not None and payload.patient.identity_verified is True


def test_the_csv_column_in_english_and_french(client: Client, bearer: dict[str, str]) -> None:
    lines = csv_import.example_csv().splitlines()
    header = lines[0].split(",")
    assert header[-1] == "identity_verified"
    column = header.index("identity_verified")
    rows = [lines[2].split(","), lines[3].split(",")]  # rows without a comma inside a value
    rows[0][column], rows[1][column] = "oui", "peut-être"
    french = [*header[:column], "Identité vérifiée", *header[column + 1 :]]
    text = "\r\n".join([",".join(french), *(",".join(r) for r in rows)]) + "\r\n"
    response = client.post("/api/v1/submissions/csv", {"file": SimpleUploadedFile("t.csv", text.encode(), "text/csv")}, **bearer)
    assert response.status_code == 202, response.content
    submission = submissions.submission_claim_queued(owner="t")
    assert submission is not None
    submissions.csv_process(submission=submission, owner="t")
    items = client.get(f"/api/v1/submissions/{submission.pk}", **bearer).json()["items"]
    accepted = [i for i in items if i["status"] == "accepted"]
    rejected = [i for i in items if i["status"] == "rejected"]
    assert len(accepted) == 1 and len(rejected) == 1, items
    assert rejected[0]["errors"][0]["field"] == "identity_verified"
    assert Screening.objects.get(pk=accepted[0]["screening_id"]).patient.identity_verified is True


def test_pre_registration_confirmed_with_the_box(as_user: Any, owner: Any, pharmacy: Any) -> None:
    link = prereg.link_for(pharmacy=pharmacy)
    row = prereg.prereg_submit(link=link, identity=identity(last_name="PREREG"), client_address="203.0.113.7")
    page = as_user(owner).get(f"/prereg/{row.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and 'name="identity_verified"' in page.content.decode()
    response = as_user(owner).post(f"/prereg/{row.pk}/", {"action": "confirm", "identity_verified": "on"})
    assert response.status_code == 302
    assert Patient.objects.get().identity_verified is True


def test_the_identity_correction_records_the_check(owner: Any, patient: Any) -> None:
    assert patient.identity_verified is None
    same = {name: getattr(patient, name) for name in CORRECTABLE if name != "identity_verified"}
    result = patient_correct_identity(actor=owner, patient_id=patient.pk, identity=PatientIdentity(**same, identity_verified=True))
    assert result.fields == ["identity_verified"]
    assert "identity_verified" in result.fields
    patient.refresh_from_db()
    assert patient.identity_verified is True
