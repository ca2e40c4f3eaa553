"""Subject access (GDPR Art. 15): the pharmacist's and the patient's export, every section, audited, scoped."""

from __future__ import annotations

import io
import json
from typing import Any

import pdfplumber
import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.certificates.models import Certificate
from relais.intake.services import screening_record
from relais.notify.services import link_issue
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.models import OutboxMessage, TransferStatus
from tests.factories import screening_input
from tests.notify.helpers import open_link, unlock

pytestmark = pytest.mark.django_db

SECTIONS = {"controller", "about", "identity", "other_records", "tests", "messages", "result_links", "certificates", "transmissions"}
SECTIONS |= {"accesses"}


@pytest.fixture
def tested(owner: Any, patient: Any) -> Any:
    """A positive test (so a certificate), its messages queued, and its transmission acknowledged by the platform."""
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": RESULT_DETECTED}))
    OutboxMessage.objects.filter(screening=screening).update(
        status=TransferStatus.ACKNOWLEDGED, ack_code="AA", ack_text="ok", sent_at=timezone.now(), acknowledged_at=timezone.now()
    )
    return screening


def _exports(**filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="patient.export", **filters))


def _json(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("application/json") and "no-store" in response["Cache-Control"]
    return dict(json.loads(response.content))


def test_pharmacist_exports_every_section_as_json(owner: Any, patient: Any, tested: Any, as_user: Any) -> None:
    client = as_user(owner)
    assert client.get(f"/patients/{patient.pk}/").status_code == 200  # a page view, to find among the accesses
    response = client.post(f"/patients/{patient.pk}/export/json", HTTP_ACCEPT_LANGUAGE="en")
    data = _json(response)
    disposition = response["Content-Disposition"]
    assert disposition == 'attachment; filename="relais-donnees-personnelles.json"'  # no identity in the file name
    assert SECTIONS <= set(data)
    identity = data["identity"]
    assert (identity["last_name"], identity["first_names"], identity["date_of_birth"]) == ("DURAND-TESTEUR", "Camille", "1994-03-12")
    assert identity["nir"] == "294037512000591" and identity["email"] == "camille.durand@example.org"
    (test,) = data["tests"]
    assert test["test_id"] == str(tested.pk) and test["results"][0]["result"] == RESULT_DETECTED
    assert {m["channel"] for m in data["messages"]} == {"email", "sms"}
    assert {m["address"] for m in data["messages"]} == {"camille.durand@example.org", "+33612345678"}  # in full: the patient's own
    assert data["result_links"] and data["result_links"][0]["series_id"] == str(tested.series_id)
    certificate = Certificate.objects.get(screening=tested)
    assert data["certificates"]["issued"][0]["uvci"] == certificate.uvci and data["certificates"]["issued"][0]["valid_until"]
    (sent,) = data["transmissions"]
    assert (sent["status"], sent["acknowledgement_code"]) == ("acknowledged", "AA") and sent["acknowledged_at"]
    actions = [a["action"] for a in data["accesses"]]
    assert {"patient.create", "screening.create", "patient.view", "patient.export"} <= set(actions), actions
    view = next(a for a in data["accesses"] if a["action"] == "patient.view")
    assert view == {**view, "pharmacy": "Pharmacie du Test", "role": "Pharmacist", "action_label": "viewed the patient record"}
    assert "owner@test.example" not in response.content.decode()  # the role, not the staff member
    (event,) = _exports()
    assert event.detail == {"format": "json", "channel": "pharmacy"} and str(patient.pk) in event.object_ids
    assert event.actor_id == owner.pk


def test_pharmacist_exports_a_pdf_with_every_section(owner: Any, patient: Any, tested: Any, as_user: Any) -> None:
    response = as_user(owner).post(f"/patients/{patient.pk}/export/pdf", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    assert response["Content-Disposition"] == 'attachment; filename="relais-donnees-personnelles.pdf"'
    with pdfplumber.open(io.BytesIO(response.content)) as pdf:
        text = "\n".join(page.extract_text() or "" for page in pdf.pages)
    uvci = Certificate.objects.get(screening=tested).uvci
    for expected in (
        "Your data held by Relais",
        "How your data are used",
        "Identity",
        "DURAND-TESTEUR Camille",
        "12/03/1994",
        "Tests",
        "Messages",
        "camille.durand@example.org",
        "Certificates",
        uvci[:20],
        "Transmissions to the national platform",
        "Acknowledged",
        "Accesses to your data",
        "exported the patient's data",
    ):
        assert expected in text, expected
    assert _exports(detail__format="pdf")


def test_a_colleague_may_export_a_stranger_gets_404_and_nothing_is_recorded(
    colleague: Any, stranger: Any, patient: Any, tested: Any, as_user: Any
) -> None:
    data = _json(as_user(colleague).post(f"/patients/{patient.pk}/export/json", HTTP_ACCEPT_LANGUAGE="en"))
    assert data["identity"]["record_id"] == str(patient.pk)
    assert len(_exports(actor_id=colleague.pk)) == 1
    for fmt in ("json", "pdf"):
        response = as_user(stranger).post(f"/patients/{patient.pk}/export/{fmt}", HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 404 and b"DURAND" not in response.content
    assert not _exports(actor_id=stranger.pk)


def test_export_is_post_only_and_knows_two_formats(owner: Any, patient: Any, as_user: Any) -> None:
    client = as_user(owner)
    assert client.get(f"/patients/{patient.pk}/export/json").status_code == 405
    assert client.post(f"/patients/{patient.pk}/export/xml", HTTP_ACCEPT_LANGUAGE="en").status_code == 404
    assert not _exports()


def test_patient_page_offers_the_export(owner: Any, patient: Any, as_user: Any) -> None:
    html = as_user(owner).get(f"/patients/{patient.pk}/").content.decode()
    assert f'action="/patients/{patient.pk}/export/pdf"' in html and f'action="/patients/{patient.pk}/export/json"' in html


def _patient_client(owner: Any, screening: Any) -> Client:
    with transaction.atomic():
        _link, token = link_issue(actor=owner, screening=screening, now=timezone.now())
    return open_link(f"/r/{token}")


def test_patient_exports_after_the_birth_date_check_only(owner: Any, patient: Any, tested: Any) -> None:
    client = _patient_client(owner, tested)
    for fmt in ("json", "pdf"):
        refused = client.post(f"/r/export/{fmt}", HTTP_ACCEPT_LANGUAGE="en")
        assert refused.status_code == 302 and refused["Location"] == "/r/"
    assert not _exports()
    assert Client().post("/r/export/json", HTTP_ACCEPT_LANGUAGE="en").status_code == 302  # no link at all
    assert unlock(client, "13/03/1994").status_code == 400  # a wrong date opens nothing
    assert client.post("/r/export/json", HTTP_ACCEPT_LANGUAGE="en").status_code == 302 and not _exports()
    assert unlock(client).status_code == 302
    page = client.get("/r/").content.decode()
    assert 'action="/r/export/pdf"' in page and 'action="/r/export/json"' in page
    assert client.get("/r/export/json").status_code == 405
    data = _json(client.post("/r/export/json", HTTP_ACCEPT_LANGUAGE="en"))
    assert SECTIONS <= set(data) and data["identity"]["last_name"] == "DURAND-TESTEUR" and data["tests"]
    assert any(a["action"] == "result_link.unlock" and a["role"] == "You (result link)" for a in data["accesses"])
    pdf = client.post("/r/export/pdf", HTTP_ACCEPT_LANGUAGE="en")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    events = _exports()
    assert [e.detail for e in events] == [{"format": "json", "channel": "result_link"}, {"format": "pdf", "channel": "result_link"}]
    assert all(e.actor_id is None and e.pharmacy_id == patient.pharmacy_id and str(patient.pk) in e.object_ids for e in events)


def test_a_replaced_link_exports_nothing(owner: Any, patient: Any, tested: Any) -> None:
    client = _patient_client(owner, tested)
    assert unlock(client).status_code == 302
    with transaction.atomic():
        link_issue(actor=owner, screening=tested, now=timezone.now())  # the pharmacist sends a new link: this one stops
    response = client.post("/r/export/json", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302 and not _exports()


def test_export_in_french(owner: Any, patient: Any, tested: Any, as_user: Any) -> None:
    client = as_user(owner)
    assert "Droit d'accès" in client.get(f"/patients/{patient.pk}/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    response = client.post(f"/patients/{patient.pk}/export/pdf", HTTP_ACCEPT_LANGUAGE="fr")
    with pdfplumber.open(io.BytesIO(response.content)) as pdf:
        text = "\n".join(page.extract_text() or "" for page in pdf.pages)
    for expected in ("Vos données détenues par Relais", "Identité", "Transmissions à la plateforme nationale", "Accès à vos données"):
        assert expected in text, expected
    data = _json(client.post(f"/patients/{patient.pk}/export/json", HTTP_ACCEPT_LANGUAGE="fr"))
    assert data["about"]["recipients"].startswith("La pharmacie") and data["accesses"][-1]["role"] == "Pharmacien"


def test_a_merged_record_is_part_of_the_export_and_its_link_exports_the_record_kept(owner: Any, patient: Any, as_user: Any) -> None:
    from relais.patients.services import patient_merge, patient_register
    from tests.factories import identity

    twin = patient_register(actor=owner, identity=identity(first_names="Camile", nir=""), allow_duplicate=True)
    earlier = screening_record(actor=owner, patient_id=twin.pk, data=screening_input())
    client = _patient_client(owner, earlier)  # a link sent while the test was on the record that is merged away
    patient_merge(actor=owner, duplicate_id=twin.pk, into_id=patient.pk)
    data = _json(as_user(owner).post(f"/patients/{patient.pk}/export/json", HTTP_ACCEPT_LANGUAGE="en"))
    assert [r["first_names"] for r in data["other_records"]] == ["Camile"] and data["other_records"][0]["merged_into"] == str(patient.pk)
    assert [t["test_id"] for t in data["tests"]] == [str(earlier.pk)]
    assert unlock(client).status_code == 302
    mine = _json(client.post("/r/export/json", HTTP_ACCEPT_LANGUAGE="en"))
    assert mine["identity"]["record_id"] == str(patient.pk) and mine["tests"]
