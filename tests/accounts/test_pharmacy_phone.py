"""Issue 16: a pharmacy's phone (E.164), entered by the platform operator when onboarding the pharmacy or later on the
pharmacies list; optional (pharmacies created before it existed have none); a wrong number is refused naming the
field and nothing changes; every change audited (pharmacy.phone_change, naming the pharmacy, not the number)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation

from relais.accounts.models import Pharmacy
from relais.accounts.services import pharmacy_create, pharmacy_phone_set
from relais.audit.labels import action_label
from relais.audit.models import AuditEvent
from tests.factories import make_pharmacy

ONBOARD = {"name": "P", "finess": "690001235", "address_line": "a", "postcode": "69001", "city": "Lyon", "admin_email": "a@example.org"}


def test_onboarding_takes_the_phone_in_e164(as_user: Any, operator: Any) -> None:
    response = as_user(operator).post("/operator/pharmacies/", {**ONBOARD, "phone": "04 72 00 00 00"})
    assert b"invite-link" in response.content
    pharmacy = Pharmacy.objects.get(finess="690001235")
    assert pharmacy.phone == "+33472000000"
    assert AuditEvent.objects.filter(action="pharmacy.create", object_ids=[str(pharmacy.pk)]).exists()


def test_the_phone_is_optional(as_user: Any, operator: Any) -> None:
    as_user(operator).post("/operator/pharmacies/", {**ONBOARD, "phone": ""})
    assert Pharmacy.objects.get(finess="690001235").phone == ""


def test_a_bad_phone_is_refused_next_to_its_field_and_nothing_is_created(as_user: Any, operator: Any) -> None:
    response = as_user(operator).post("/operator/pharmacies/", {**ONBOARD, "phone": "12"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert b'id="id_phone_error"' in response.content and b"invite-link" not in response.content
    assert not Pharmacy.objects.filter(finess="690001235").exists()
    assert not AuditEvent.objects.filter(action="pharmacy.create").exists()


def test_the_service_names_the_field(db: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        pharmacy_create(actor=None, name="P", finess="690001235", address_line="a", postcode="69001", city="Lyon", phone="+33 1")
    assert set(caught.value.message_dict) == {"phone"}
    assert not Pharmacy.objects.exists()


def test_the_operator_sets_changes_and_removes_a_pharmacy_phone_audited(as_user: Any, operator: Any, pharmacy: Any) -> None:
    client = as_user(operator)
    page = client.get("/operator/pharmacies/")
    assert f'action="/operator/pharmacies/{pharmacy.pk}/phone/"'.encode() in page.content
    assert client.post(f"/operator/pharmacies/{pharmacy.pk}/phone/", {"phone": "01 42 34 56 78"}).status_code == 302
    pharmacy.refresh_from_db()
    assert pharmacy.phone == "+33142345678"
    assert b'value="+33142345678"' in client.get("/operator/pharmacies/").content
    events = AuditEvent.objects.filter(action="pharmacy.phone_change")
    assert [(e.object_ids, str(e.pharmacy_id), e.actor_id) for e in events] == [([str(pharmacy.pk)], str(pharmacy.pk), operator.pk)]
    assert "142345678" not in str(events[0].detail)  # the event names the pharmacy, not the number
    client.post(f"/operator/pharmacies/{pharmacy.pk}/phone/", {"phone": "+33142345678"})  # unchanged: no event
    assert AuditEvent.objects.filter(action="pharmacy.phone_change").count() == 1
    client.post(f"/operator/pharmacies/{pharmacy.pk}/phone/", {"phone": ""})
    pharmacy.refresh_from_db()
    assert pharmacy.phone == "" and AuditEvent.objects.filter(action="pharmacy.phone_change").count() == 2
    with translation.override("en"):
        assert str(action_label("pharmacy.phone_change")) == "changed a pharmacy's phone number"
    with translation.override("fr"):
        assert str(action_label("pharmacy.phone_change")) == "a modifié le numéro de téléphone d'une pharmacie"


def test_a_bad_phone_on_the_list_names_the_field_and_changes_nothing(as_user: Any, operator: Any, pharmacy: Any) -> None:
    pharmacy_phone_set(actor=operator, pharmacy_id=pharmacy.pk, phone="+33142345678")
    response = as_user(operator).post(
        f"/operator/pharmacies/{pharmacy.pk}/phone/", {"phone": "0000"}, HTTP_ACCEPT_LANGUAGE="en", follow=True
    )
    assert b"Pharmacy phone:" in response.content
    pharmacy.refresh_from_db()
    assert pharmacy.phone == "+33142345678"
    assert AuditEvent.objects.filter(action="pharmacy.phone_change").count() == 1


def test_an_unknown_pharmacy_answers_404(as_user: Any, operator: Any, pharmacy: Any) -> None:
    assert as_user(operator).post(f"/operator/pharmacies/{uuid.uuid4()}/phone/", {"phone": ""}).status_code == 404


def test_only_the_operator_changes_a_pharmacy_phone(as_user: Any, admin: Any, owner: Any, pharmacy: Any, other_pharmacy: Any) -> None:
    for user in (admin, owner):
        with pytest.raises(PermissionDenied):
            pharmacy_phone_set(actor=user, pharmacy_id=pharmacy.pk, phone="+33142345678")
        assert as_user(user).post(f"/operator/pharmacies/{other_pharmacy.pk}/phone/", {"phone": "+33142345678"}).status_code in (403, 404)
    pharmacy.refresh_from_db()
    other_pharmacy.refresh_from_db()
    assert pharmacy.phone == other_pharmacy.phone == ""
    assert not AuditEvent.objects.filter(action="pharmacy.phone_change").exists()


def test_an_existing_pharmacy_without_phone_stays_valid(db: Any) -> None:
    pharmacy = make_pharmacy("750000010", "Ancienne")
    assert pharmacy.phone == ""
    pharmacy.full_clean()
