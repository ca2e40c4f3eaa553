"""Auditor pages: scope (owner, colleague, stranger, admin, auditor), the patient lookup by blind index without identity,
"who accessed this patient" across the patient's objects, filters, paging, formula-safe CSV, and the audit of each read."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from relais.accounts.models import Role
from relais.audit.models import AuditEvent
from relais.audit.seal import seal_pending
from relais.audit.services import audit_record
from relais.notify.models import Notification, ResultLink
from relais.patients.services import patient_register
from tests.factories import identity, make_pharmacy, make_user

pytestmark = pytest.mark.django_db

NIR = "294037512000591"


def _events(page: Any) -> list[str]:
    return [row.action for row in page.context["page"].rows]


def _record(actor: Any, action: str, ids: list[Any], **kw: Any) -> AuditEvent:
    with transaction.atomic():
        return audit_record(actor=actor, action=action, object_type=kw.pop("object_type", "patient"), object_ids=ids, **kw)


@pytest.mark.parametrize("who", ["owner", "colleague", "stranger", "operator"])
def test_staff_without_an_audit_role_get_403_on_every_auditor_page(who: str, request: Any, as_user: Any, patient: Any) -> None:
    client = as_user(request.getfixturevalue(who))
    for url in (
        "/audit/",
        "/audit/export.csv",
        "/audit/patients/",
        f"/audit/patients/{patient.pk}/",
        f"/audit/patients/{patient.pk}/export.csv",
        "/audit/alerts/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/audit/patients/", {"nir": NIR}).status_code == 403


def test_admin_sees_their_pharmacy_events_only_and_auditor_sees_all(
    as_user: Any, admin: Any, auditor: Any, owner: Any, stranger: Any, patient: Any
) -> None:
    theirs = patient_register(actor=stranger, identity=identity(last_name="AILLEURS", nir=""))
    admin_rows = as_user(admin).get("/audit/").context["page"].rows
    assert any(r.actor_email == owner.email for r in admin_rows)
    assert not any(r.actor_email == stranger.email for r in admin_rows)
    assert not any(str(theirs.pk) in r.object_ids for r in admin_rows)
    auditor_rows = as_user(auditor).get("/audit/").context["page"].rows
    assert any(r.actor_email == stranger.email for r in auditor_rows) and any(r.actor_email == owner.email for r in auditor_rows)


def test_an_auditor_attached_to_a_pharmacy_reads_that_pharmacy_only(
    as_user: Any, pharmacy: Any, other_pharmacy: Any, owner: Any, stranger: Any, patient: Any
) -> None:
    local = make_user("local-auditor@test.example", Role.AUDITOR, other_pharmacy)
    client = as_user(local)
    rows = client.get("/audit/").context["page"].rows
    assert rows and all(r.pharmacy == other_pharmacy.name for r in rows)
    assert client.get(f"/audit/patients/{patient.pk}/").status_code == 404  # another pharmacy's patient
    assert client.post("/audit/patients/", {"nir": NIR}).context["results"] == []


def test_pages_show_readable_actions_names_and_pharmacies_in_english_and_french(
    as_user: Any, auditor: Any, owner: Any, patient: Any, pharmacy: Any
) -> None:
    from relais.patients.selectors import patient_get

    patient_get(actor=owner, patient_id=patient.pk)
    client = as_user(auditor)
    page = client.get("/audit/", {"action": "patient.view"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "viewed the patient record" in page and "owner" in page and pharmacy.name in page
    page = client.get("/audit/", {"action": "patient.view"}, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "a consulté la fiche patient" in page


def test_auditor_finds_a_patient_by_nir_or_name_and_birth_date_and_sees_no_identity(
    as_user: Any, auditor: Any, patient: Any, pharmacy: Any
) -> None:
    client = as_user(auditor)
    response = client.post("/audit/patients/", {"nir": NIR})
    assert [r.id for r in response.context["results"]] == [patient.pk]
    body = response.content.decode()
    assert str(patient.pk) in body and pharmacy.name in body
    for secret in ("DURAND", "Camille", NIR, "1994-03-12", "12/03/1994"):
        assert secret.lower() not in body.lower(), secret
    response = client.post("/audit/patients/", {"last_name": "Durand-Testeur", "date_of_birth": "1994-03-12"})
    assert [r.id for r in response.context["results"]] == [patient.pk]
    searches = AuditEvent.objects.filter(action="audit.patient_search").order_by("id")
    assert [e.detail for e in searches] == [{"by": "nir", "found": 1}, {"by": "name_dob", "found": 1}]
    assert all(e.object_ids == [str(patient.pk)] and e.actor_id == auditor.pk for e in searches)
    stored = " ".join(str(e.detail) + str(e.object_ids) for e in AuditEvent.objects.all())
    assert NIR not in stored and "DURAND" not in stored.upper()


def test_the_patient_lookup_takes_no_identity_in_the_url(as_user: Any, auditor: Any, patient: Any) -> None:
    response = as_user(auditor).get("/audit/patients/", {"nir": NIR})
    assert response.status_code == 200 and response.context["results"] is None
    assert not AuditEvent.objects.filter(action="audit.patient_search").exists()


def test_who_accessed_the_patient_includes_tests_result_links_and_messages(
    as_user: Any, auditor: Any, owner: Any, patient: Any, screening: Any
) -> None:
    notification = Notification.objects.filter(patient=patient).first()
    link = ResultLink.objects.filter(patient=patient).first()
    assert notification is not None and link is not None  # the patient gave an address: a message and a link were queued
    _record(None, "notification.send", [notification.pk], object_type="notification", pharmacy_id=patient.pharmacy_id)
    _record(None, "result_link.wrong_birth_date", [link.pk], object_type="result_link", pharmacy_id=patient.pharmacy_id)
    other = patient_register(actor=owner, identity=identity(last_name="AUTRE", nir="", email="", phone=""))
    _record(owner, "patient.view", [other.pk])
    response = as_user(auditor).get(f"/audit/patients/{patient.pk}/")
    assert response.status_code == 200
    actions = _events(response)
    for expected in ("patient.create", "screening.create", "notification.send", "result_link.wrong_birth_date"):
        assert expected in actions, expected
    assert all(str(other.pk) not in r.object_ids for r in response.context["page"].rows)
    seen = AuditEvent.objects.filter(action="audit.patient_view").get()
    assert seen.object_ids == [str(patient.pk)] and seen.actor_id == auditor.pk


def test_patient_page_scope_admin_of_the_pharmacy_yes_other_admin_404(as_user: Any, admin: Any, other_pharmacy: Any, patient: Any) -> None:
    assert as_user(admin).get(f"/audit/patients/{patient.pk}/").status_code == 200
    other_admin = make_user("other-admin@test.example", Role.PHARMACY_ADMIN, other_pharmacy)
    assert as_user(other_admin).get(f"/audit/patients/{patient.pk}/").status_code == 404
    assert as_user(other_admin).get(f"/audit/patients/{uuid.uuid4()}/").status_code == 404


def test_filters_by_account_pharmacy_action_and_time(
    as_user: Any, auditor: Any, owner: Any, colleague: Any, stranger: Any, patient: Any, other_pharmacy: Any
) -> None:
    _record(colleague, "patient.view", [patient.pk])
    client = as_user(auditor)
    rows = client.get("/audit/", {"account": str(colleague.pk)}).context["page"].rows
    assert rows and {r.actor_email for r in rows} == {colleague.email}
    patient_register(actor=stranger, identity=identity(nir=""))
    rows = client.get("/audit/", {"pharmacy": str(other_pharmacy.pk)}).context["page"].rows
    assert rows and {r.pharmacy for r in rows} == {other_pharmacy.name}
    rows = client.get("/audit/", {"action": "patient.create"}).context["page"].rows
    assert len(rows) == 2 and {r.action for r in rows} == {"patient.create"}
    today = timezone.localdate()
    assert client.get("/audit/", {"since": str(today + timedelta(days=1))}).context["page"].rows == []
    assert client.get("/audit/", {"until": str(today - timedelta(days=1))}).context["page"].rows == []
    assert client.get("/audit/", {"since": str(today), "until": str(today), "action": "patient.create"}).context["page"].count == 2
    kinds = [e.detail["filters"] for e in AuditEvent.objects.filter(action="audit.search").order_by("id")]
    assert kinds[0] == ["actor"] and ["since", "until", "action"] != kinds[-1] and set(kinds[-1]) == {"action", "since", "until"}


def test_paging_goes_through_every_event_once(as_user: Any, auditor: Any, owner: Any, patient: Any) -> None:
    for _ in range(60):
        _record(owner, "patient.view", [patient.pk])
    client = as_user(auditor)
    first = client.get("/audit/", {"action": "patient.view"})
    page = first.context["page"]
    assert len(page.rows) == 50 and page.count == 60 and page.next_after is not None
    assert f"after={page.next_after}" in first.content.decode()
    second = client.get("/audit/", {"action": "patient.view", "after": str(page.next_after)}).context["page"]
    assert len(second.rows) == 10 and second.next_after is None
    ids = [r.public_id for r in page.rows + second.rows]
    assert len(set(ids)) == 60 and ids == sorted(ids, key=lambda i: -AuditEvent.objects.get(public_id=i).pk)


def test_csv_export_is_formula_safe_complete_and_audited(as_user: Any, auditor: Any, owner: Any, patient: Any) -> None:
    evil = make_pharmacy("130000011", '=HYPERLINK("http://evil")')
    evil_user = make_user("+evil@test.example", Role.PHARMACIST, evil)
    _record(evil_user, "patient.view", [uuid.uuid4()], pharmacy_id=evil.pk)
    response = as_user(auditor).get("/audit/export.csv", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0].startswith("Time")
    flagged = [r for r in rows if "patient.view" in r and evil_user.email in " ".join(r)]
    assert flagged, rows
    assert '\'=HYPERLINK("http://evil")' in flagged[0] and "'+evil@test.example" in flagged[0]
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    export = AuditEvent.objects.get(action="audit.export")
    assert export.detail == {"filters": [], "rows": len(rows) - 1, "truncated": False}


def test_patient_export_lists_the_patient_events_and_is_audited_without_identity(
    as_user: Any, admin: Any, patient: Any, screening: Any
) -> None:
    response = as_user(admin).get(f"/audit/patients/{patient.pk}/export.csv")
    body = response.content.decode("utf-8-sig")
    assert "screening.create" in body and "patient.create" in body and "DURAND" not in body
    export = AuditEvent.objects.get(action="audit.export")
    assert export.object_ids == [str(patient.pk)] and export.detail["filters"] == ["object_ids"]


def test_every_audit_page_shows_the_seal_status_and_last_checkpoint(as_user: Any, auditor: Any, patient: Any) -> None:
    client = as_user(auditor)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert "No signed checkpoint yet" in client.get("/audit/").content.decode()
    seal_pending(checkpoint=True)
    for url in ("/audit/", "/audit/patients/", f"/audit/patients/{patient.pk}/", "/audit/alerts/"):
        body = client.get(url).content.decode()
        assert "Audit log seal" in body and "Last signed checkpoint" in body, url
