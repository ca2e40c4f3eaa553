"""The identity correction page: owner, colleague (same pharmacy), stranger (404), bad input, and the link from a
rejection that names the identity."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.corrections.rejections import names_identity
from relais.patients.models import Patient
from relais.screenings.models import Screening
from relais.transfer.models import OutboxMessage, TransferStatus


def _form(patient: Patient, **changes: str) -> dict[str, str]:
    values = {
        "last_name": patient.last_name,
        "first_names": patient.first_names,
        "sex": patient.sex,
        "date_of_birth": patient.date_of_birth.strftime("%d/%m/%Y"),
        "nir": patient.nir,
        "address_line": patient.address_line,
        "postcode": patient.postcode,
        "city": patient.city,
        "country": patient.country,
    }
    values.update(changes)
    return values


@pytest.fixture
def as_user(as_user: Any) -> Any:
    """Clients that read the pages in English (the messages asserted here)."""

    def client(user: Any) -> Any:
        c = as_user(user)
        c.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        return c

    return client


def _url(patient: Patient) -> str:
    return reverse("patients:identity", args=[patient.pk])


@pytest.mark.parametrize("who", ["owner", "colleague", "admin"])
def test_staff_of_the_pharmacy_review_then_confirm(request: Any, as_user: Any, who: str, patient: Any, screening: Any) -> None:
    client = as_user(request.getfixturevalue(who))
    page = client.get(_url(patient))
    assert page.status_code == 200 and 'value="DURAND-TESTEUR"' in page.content.decode()
    # First submit: what changes, nothing saved yet.
    preview = client.post(_url(patient), _form(patient, last_name="DURAND"))
    html = preview.content.decode()
    assert preview.status_code == 200 and 'data-testid="identity-changes"' in html
    assert 'data-field="last_name"' in html and 'data-field="first_names"' not in html
    assert "DURAND-TESTEUR" in html and "1 test of this patient" in html
    assert Patient.objects.get(pk=patient.pk).last_name == "DURAND-TESTEUR"
    assert not AuditEvent.objects.filter(action="patient.correct_identity").exists()
    # Confirm: saved, the test sent again, back on the patient page.
    done = client.post(_url(patient), {**_form(patient, last_name="DURAND"), "confirm": "on"})
    assert done.status_code == 302 and done["Location"] == reverse("patients:detail", args=[patient.pk])
    assert Patient.objects.get(pk=patient.pk).last_name == "DURAND"
    assert OutboxMessage.objects.filter(series_id=screening.series_id, version=2).count() == 1


def test_change_the_values_goes_back_to_the_form(as_user: Any, owner: Any, patient: Any) -> None:
    page = as_user(owner).post(_url(patient), {**_form(patient, last_name="DURAND"), "confirm": "on", "edit": "1"})
    assert 'data-testid="identity-changes"' not in page.content.decode() and 'value="DURAND"' in page.content.decode()
    assert Patient.objects.get(pk=patient.pk).last_name == "DURAND-TESTEUR"


def test_a_stranger_gets_404_and_changes_nothing(as_user: Any, stranger: Any, patient: Any) -> None:
    client = as_user(stranger)
    assert client.get(_url(patient)).status_code == 404
    assert client.post(_url(patient), {**_form(patient, last_name="DURAND"), "confirm": "on"}).status_code == 404
    assert Patient.objects.get(pk=patient.pk).last_name == "DURAND-TESTEUR"


def test_operators_and_auditors_may_not_open_it(as_user: Any, operator: Any, auditor: Any, patient: Any) -> None:
    for user in (operator, auditor):
        assert as_user(user).get(_url(patient)).status_code == 403


def test_bad_input_changes_nothing_and_says_why_next_to_the_field(as_user: Any, owner: Any, patient: Any, screening: Any) -> None:
    before = (OutboxMessage.objects.count(), Screening.objects.count())
    page = as_user(owner).post(_url(patient), {**_form(patient, last_name="DURAND", nir="294037512000592"), "confirm": "on"})
    html = page.content.decode()
    assert page.status_code == 200 and "NIR key" in html
    assert 'aria-describedby="id_nir_error"' in html and 'id="id_nir_error"' in html
    page = as_user(owner).post(_url(patient), {**_form(patient, last_name="---"), "confirm": "on"})
    assert "no letter" in page.content.decode()
    page = as_user(owner).post(_url(patient), {**_form(patient), "confirm": "on"})
    assert "Nothing to correct" in page.content.decode()
    assert Patient.objects.get(pk=patient.pk).last_name == "DURAND-TESTEUR"
    assert (OutboxMessage.objects.count(), Screening.objects.count()) == before
    assert not AuditEvent.objects.filter(action="patient.correct_identity").exists()


def test_a_duplicate_is_refused_on_confirm_naming_the_field(as_user: Any, owner: Any, patient: Any) -> None:
    from relais.patients.services import patient_register
    from tests.factories import identity

    other = patient_register(actor=owner, identity=identity(last_name="MARTIN", nir="", phone="", email=""))
    page = as_user(owner).post(_url(other), {**_form(other, last_name="DURAND-TESTEUR"), "confirm": "on"})
    assert "already has this last name" in page.content.decode()
    assert Patient.objects.get(pk=other.pk).last_name == "MARTIN"


def _reject(screening: Screening, reason: str) -> None:
    OutboxMessage.objects.filter(screening=screening).update(
        status=TransferStatus.REJECTED, rejection_reason=reason, rejected_at=timezone.now()
    )


def test_an_identity_rejection_links_to_the_correction_form(as_user: Any, owner: Any, patient: Any, screening: Any) -> None:
    _reject(screening, "INS non qualifiée")
    html = as_user(owner).get(reverse("screenings:detail", args=[screening.pk])).content.decode()
    assert f'href="{_url(patient)}" data-testid="correct-identity"' in html


def test_other_rejections_do_not(as_user: Any, owner: Any, patient: Any, screening: Any) -> None:
    _reject(screening, "OBX-5: unknown result code")
    html = as_user(owner).get(reverse("screenings:detail", args=[screening.pk])).content.decode()
    assert "rejection-reason" in html and _url(patient) not in html


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("INS non qualifiée", True),
        ("PID-5: nom de famille absent", True),
        ("Patient.birthDate: date de naissance invalide", True),
        ("identité incohérente avec le NIR", True),
        ("rejected by sandbox: reject mode", False),
        ("OBX-5: unknown result code", False),
        ("device not in catalogue", False),
    ],
)
def test_which_rejections_name_the_identity(reason: str, expected: bool) -> None:
    assert names_identity(reason) is expected


def test_the_test_lists_link_an_identity_rejection_too(as_user: Any, owner: Any, patient: Any, screening: Any) -> None:
    _reject(screening, "INS non qualifiée")
    html = as_user(owner).get(reverse("patients:detail", args=[patient.pk])).content.decode()
    assert f'href="{_url(patient)}" data-testid="correct-identity-row"' in html
