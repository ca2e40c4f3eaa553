"""Pre-registration pages: the patient's public form and code page, the counter's list, lookup, confirm and poster."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.patients.models import Patient
from relais.prereg import services
from relais.prereg.models import PreRegistration
from tests.factories import identity

pytestmark = pytest.mark.django_db

FORM = {
    "last_name": "Lefèvre-Essai",
    "first_names": "Anne",
    "sex": "F",
    "date_of_birth": "12/03/1994",
    "nir": "",
    "address_line": "",
    "postcode": "",
    "city": "",
    "country": "FR",
    "phone": "06 12 34 56 78",
    "email": "",
    "send_result": "on",
}


def _url(pharmacy: Any) -> str:
    return f"/pre/{services.link_for(pharmacy=pharmacy).token}/"


def _public(lang: str = "en") -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE=lang, enforce_csrf_checks=True)


def _csrf_post(client: Client, url: str, data: dict[str, str]) -> Any:
    page = client.get(url)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert token, "the form carries a CSRF token"
    return client.post(url, {**data, "csrfmiddlewaretoken": token.group(1).decode()})


def test_patient_pre_registers_and_gets_a_code(pharmacy: Any) -> None:
    client = _public()
    page = client.get(_url(pharmacy))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Pharmacie du Test" in html
    for name, purpose in (("last_name", "family-name"), ("first_names", "given-name"), ("date_of_birth", "bday"), ("phone", "tel")):
        assert re.search(rf'<input[^>]*name="{name}"[^>]*autocomplete="{purpose}"|autocomplete="{purpose}"[^>]*name="{name}"', html), name
        assert f'<label for="id_{name}"' in html
    assert "<script" not in html and "style=" not in html  # CSP: no inline script or style
    assert page["X-Robots-Tag"] == "noindex, nofollow"
    response = _csrf_post(client, _url(pharmacy), FORM)
    assert response.status_code == 302 and response["Location"] == "/pre/done/"  # no identity, no code in the address
    row = PreRegistration.objects.get()
    assert (row.last_name, row.phone, row.date_of_birth.isoformat()) == ("Lefèvre-Essai", "+33612345678", "1994-03-12")
    done = client.get("/pre/done/")
    assert done.status_code == 200
    assert b'data-testid="prereg-code"' in done.content and row.code.encode() in done.content
    assert b"Lef" not in done.content  # the code page shows no identity
    assert not Patient.objects.exists()


def test_the_form_is_french_by_default(pharmacy: Any) -> None:
    page = Client().get(_url(pharmacy))
    assert b'lang="fr"' in page.content
    assert b'<label for="id_last_name">Nom' in page.content
    assert b"Envoyer mes informations" in page.content


def test_without_csrf_token_nothing_is_stored(pharmacy: Any) -> None:
    response = _public().post(_url(pharmacy), FORM)
    assert response.status_code == 403
    assert not PreRegistration.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("phone", "06 12"), ("date_of_birth", "31/02/1990"), ("last_name", ""), ("email", "not-an-email"), ("country", "ZZ")],
)
def test_bad_input_names_the_field_and_stores_nothing(pharmacy: Any, field: str, value: str) -> None:
    response = _csrf_post(_public(), _url(pharmacy), {**FORM, field: value})
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="id_{field}_error"' in html
    widget = re.search(rf'<(input|select)[^>]*id="id_{field}"[^>]*>', html)
    assert widget and 'aria-invalid="true"' in widget.group(0) and re.search(f'aria-describedby="id_{field}_error[ "]', widget.group(0))
    assert "autofocus" in widget.group(0)  # focus on the first field in error
    assert not PreRegistration.objects.exists()
    assert not AuditEvent.objects.filter(action="prereg.submit").exists()


def test_contact_details_need_the_consent_box_and_the_box_needs_details(pharmacy: Any) -> None:
    response = _csrf_post(_public(), _url(pharmacy), {**FORM, "send_result": ""})
    assert response.status_code == 200 and b'id="id_send_result_error"' in response.content
    response = _csrf_post(_public(), _url(pharmacy), {**FORM, "phone": ""})
    assert response.status_code == 200 and b'id="id_phone_error"' in response.content
    response = _csrf_post(_public(), _url(pharmacy), {**FORM, "phone": "", "send_result": ""})
    assert response.status_code == 302
    assert PreRegistration.objects.get().phone == ""


def test_rotated_or_unknown_link_is_refused(pharmacy: Any, admin: Any, as_user: Any) -> None:
    old = _url(pharmacy)
    response = as_user(admin).post("/prereg/link/rotate/")
    assert response.status_code == 302
    for url in (old, "/pre/not-a-token/"):
        response = _public().get(url)
        assert response.status_code == 404 and b"not valid" in response.content
    assert _public().get(_url(pharmacy)).status_code == 200


def test_closed_pharmacy_link_is_refused(pharmacy: Any) -> None:
    url = _url(pharmacy)
    pharmacy.is_active = False
    pharmacy.save()
    assert _public().get(url).status_code == 404


def test_expired_pre_registration_code_page(pharmacy: Any) -> None:
    client = _public()
    _csrf_post(client, _url(pharmacy), FORM)
    PreRegistration.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/pre/done/")
    assert response.status_code == 404
    assert b"No pre-registration in progress" in response.content
    assert b'data-testid="prereg-code"' not in response.content


def test_rate_limited_submission_gets_a_clear_message(pharmacy: Any, settings: Any) -> None:
    settings.RELAIS_PREREG = {"per_address_per_hour": 1}
    _csrf_post(_public(), _url(pharmacy), FORM)
    response = _csrf_post(_public(), _url(pharmacy), {**FORM, "first_names": "Paul"})
    assert response.status_code == 429
    assert b"Too many pre-registrations were sent from this connection" in response.content
    assert PreRegistration.objects.count() == 1


def test_patient_withdraws(pharmacy: Any) -> None:
    client = _public()
    _csrf_post(client, _url(pharmacy), FORM)
    response = _csrf_post(client, "/pre/done/", {"action": "withdraw"})
    assert response.status_code == 200 and b"deleted" in response.content
    assert not PreRegistration.objects.exists()


# --- the counter -------------------------------------------------------------------------------------------------


def _row(pharmacy: Any, **overrides: Any) -> PreRegistration:
    link = services.link_for(pharmacy=pharmacy)
    return services.prereg_submit(link=link, identity=identity(**overrides), client_address="203.0.113.1")


def test_list_shows_the_pharmacy_entries_to_owner_and_colleague_only(
    pharmacy: Any, owner: Any, colleague: Any, stranger: Any, as_user: Any
) -> None:
    row = _row(pharmacy)
    for user in (owner, colleague):
        page = as_user(user).get("/prereg/")
        assert page.status_code == 200
        assert b"DURAND-TESTEUR Camille" in page.content and b"12/03/1994" in page.content and row.code.encode() in page.content
    page = as_user(stranger).get("/prereg/")
    assert page.status_code == 200 and b"DURAND" not in page.content
    assert AuditEvent.objects.filter(action="prereg.list", actor_id=owner.pk, object_ids=[str(row.pk)]).exists()


def test_lookup_by_code(pharmacy: Any, owner: Any, stranger: Any, as_user: Any) -> None:
    row = _row(pharmacy)
    response = as_user(owner).post("/prereg/", {"code": f" {row.code[:3].lower()}-{row.code[3:]} "})
    assert response.status_code == 302 and response["Location"] == f"/prereg/{row.pk}/"
    response = as_user(stranger).post("/prereg/", {"code": row.code})
    assert response.status_code == 200 and b'id="id_code_error"' in response.content


def test_confirm_page_and_confirm(pharmacy: Any, owner: Any, colleague: Any, stranger: Any, as_user: Any) -> None:
    row = _row(pharmacy)
    assert as_user(stranger).get(f"/prereg/{row.pk}/").status_code == 404
    assert as_user(stranger).post(f"/prereg/{row.pk}/", {"action": "confirm"}).status_code == 404
    page = as_user(colleague).get(f"/prereg/{row.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert b"Check the identity document" in page.content and b"DURAND-TESTEUR" in page.content and b"Female" in page.content
    response = as_user(owner).post(f"/prereg/{row.pk}/", {"action": "confirm"})
    patient = Patient.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/patients/{patient.pk}/record/"
    assert not PreRegistration.objects.exists()
    assert AuditEvent.objects.filter(action="prereg.confirm", actor_id=owner.pk).count() == 1
    # Confirmed at the other desk meanwhile: nothing twice.
    response = as_user(colleague).post(f"/prereg/{row.pk}/", {"action": "confirm"})
    assert response.status_code == 404 and Patient.objects.count() == 1


def test_confirm_with_a_correction(pharmacy: Any, owner: Any, as_user: Any) -> None:
    row = _row(pharmacy, first_names="Camile")
    page = as_user(owner).get(f"/prereg/{row.pk}/?edit=1")
    assert b'value="Camile"' in page.content
    form = {k: v for k, v in FORM.items() if k != "send_result"}
    response = as_user(owner).post(
        f"/prereg/{row.pk}/", {**form, "last_name": "DURAND-TESTEUR", "first_names": "Camille", "action": "correct"}
    )
    assert response.status_code == 302
    assert Patient.objects.get().first_names == "Camille"
    bad = _row(pharmacy)
    response = as_user(owner).post(f"/prereg/{bad.pk}/", {**form, "phone": "06 12", "action": "correct"})
    assert response.status_code == 200 and b'id="id_phone_error"' in response.content
    assert PreRegistration.objects.filter(pk=bad.pk).exists()


def test_discard(pharmacy: Any, owner: Any, stranger: Any, as_user: Any) -> None:
    row = _row(pharmacy)
    assert as_user(stranger).post(f"/prereg/{row.pk}/", {"action": "discard"}).status_code == 404
    response = as_user(owner).post(f"/prereg/{row.pk}/", {"action": "discard"})
    assert response.status_code == 302 and response["Location"] == "/prereg/"
    assert not PreRegistration.objects.exists() and not Patient.objects.exists()
    assert AuditEvent.objects.filter(action="prereg.discard", actor_id=owner.pk).count() == 1


def test_poster_and_qr(pharmacy: Any, owner: Any, admin: Any, operator: Any, as_user: Any) -> None:
    page = as_user(owner).get("/prereg/link/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    token = services.link_for(pharmacy=pharmacy).token
    assert f"/pre/{token}/".encode() in page.content
    assert b"Replace the link" not in page.content  # pharmacists print, administrators replace
    assert b"Replace the link" in as_user(admin).get("/prereg/link/", HTTP_ACCEPT_LANGUAGE="en").content
    qr = as_user(owner).get("/prereg/link/qr.svg")
    assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content
    assert as_user(owner).post("/prereg/link/rotate/").status_code == 403
    assert as_user(operator).get("/prereg/link/").status_code == 403
    assert services.link_for(pharmacy=pharmacy).token == token


def test_staff_nav_links_the_list(owner: Any, as_user: Any) -> None:
    assert b'href="/prereg/"' in as_user(owner).get("/").content
