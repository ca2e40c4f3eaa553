from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from relais.audit.models import AuditEvent
from relais.patients.models import Patient
from relais.patients.selectors import patient_search
from relais.patients.services import LikelyDuplicate, patient_register
from tests.factories import identity

FORM = {
    "last_name": "Lefèvre",
    "first_names": "Anne Marie",
    "sex": "F",
    "date_of_birth": "12/03/1994",
    "nir": "2 94 03 75 120 005 91",
    "address_line": "3 rue Haute",
    "postcode": "75003",
    "city": "Paris",
    "country": "fr",
    "phone": "06 12 34 56 78",
    "email": "Anne@Example.ORG",
}


def test_register_through_the_form_normalises(as_user: Any, owner: Any) -> None:
    response = as_user(owner).post("/patients/new/", FORM)
    assert response.status_code == 302
    patient = Patient.objects.get()
    assert response["Location"] == f"/patients/{patient.pk}/record/"
    assert patient.phone == "+33612345678"
    assert patient.email == "Anne@example.org"
    assert patient.nir == "294037512000591"
    assert patient.country == "FR"
    assert patient.date_of_birth == date(1994, 3, 12)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nir", "294037512000592"),
        ("nir", "194037512000518"),  # valid NIR but male, patient female
        ("phone", "06 12"),
        ("email", "not-an-email"),
        ("date_of_birth", "31/02/1990"),
        ("date_of_birth", "01/01/2999"),
        ("postcode", "7500"),
        ("country", "ZZ"),
        ("last_name", ""),
    ],
)
def test_bad_input_is_reported_next_to_the_field_and_changes_nothing(as_user: Any, owner: Any, field: str, value: str) -> None:
    events = AuditEvent.objects.count()
    response = as_user(owner).post("/patients/new/", {**FORM, field: value}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert f'id="id_{field}_error"'.encode() in response.content
    assert not Patient.objects.exists()
    assert AuditEvent.objects.count() == events


def test_likely_duplicate_is_flagged_then_can_be_confirmed(as_user: Any, owner: Any, patient: Any) -> None:
    client = as_user(owner)
    form = {**FORM, "last_name": "Durand Testeur", "first_names": "camille", "nir": ""}
    response = client.post("/patients/new/", form)
    assert b"duplicate-warning" in response.content
    assert Patient.objects.count() == 1
    response = client.post("/patients/new/", {**form, "confirm_duplicate": "on"})
    assert response.status_code == 302
    assert Patient.objects.count() == 2


def test_same_nir_is_a_duplicate(owner: Any, patient: Any) -> None:
    with pytest.raises(LikelyDuplicate) as exc:
        patient_register(actor=owner, identity=identity(last_name="AUTRE", first_names="Nom"))
    assert exc.value.matches == [patient]


def test_same_person_at_another_pharmacy_is_not_linked(stranger: Any, patient: Any) -> None:
    other = patient_register(actor=stranger, identity=identity())
    assert other.nir_index != patient.nir_index
    assert other.identity_index != patient.identity_index


def test_search_by_nir_or_name_and_birth_date(owner: Any, patient: Any) -> None:
    assert patient_search(actor=owner, nir="2 94 03 75 120 005 91") == [patient]
    assert patient_search(actor=owner, last_name="durand testeur", date_of_birth=date(1994, 3, 12)) == [patient]
    # Issue 15: a double name is found by its first part, and a last name alone is enough (tests/patients/test_search.py).
    assert patient_search(actor=owner, last_name="Durand", date_of_birth=date(1994, 3, 12)) == [patient]
    assert patient_search(actor=owner, last_name="DURAND-TESTEUR") == [patient]
    assert patient_search(actor=owner, last_name="Durand", date_of_birth=date(1994, 3, 13)) == []
    event = AuditEvent.objects.filter(action="patient.search").latest("id")
    assert event.actor_id == owner.pk


def test_search_never_puts_identity_in_the_url(as_user: Any, owner: Any, patient: Any) -> None:
    client = as_user(owner)
    page = client.get("/patients/")
    assert b'method="post"' in page.content
    response = client.post("/patients/", {"last_name": "DURAND-TESTEUR", "date_of_birth": "1994-03-12"})
    assert str(patient.pk).encode() in response.content
    bad = client.post("/patients/", {"nir": "12"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert bad.count('id="id_nir_error"') == 1
    assert 'aria-describedby="id_nir_error"' in bad


def test_contact_update_is_audited(as_user: Any, owner: Any, patient: Any) -> None:
    response = as_user(owner).post(f"/patients/{patient.pk}/contact/", {"phone": "07 81 22 33 44", "email": ""})
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.phone == "+33781223344"
    assert AuditEvent.objects.filter(action="patient.update_contact", object_ids=[str(patient.pk)]).exists()


def test_str_never_reveals_identity(patient: Any) -> None:
    assert "DURAND" not in str(patient) and "Camille" not in repr(patient)


def test_focus_moves_to_the_first_field_in_error(as_user: Any, owner: Any) -> None:
    page = as_user(owner).post("/patients/new/", {**FORM, "phone": "06 12"}).content.decode()
    phone_input = re.search(r'<input[^>]*name="phone"[^>]*>', page)
    last_name_input = re.search(r'<input[^>]*name="last_name"[^>]*>', page)
    assert phone_input is not None and last_name_input is not None
    assert "autofocus" in phone_input.group(0) and 'aria-invalid="true"' in phone_input.group(0)
    assert "autofocus" not in last_name_input.group(0)
