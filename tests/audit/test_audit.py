from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, OperationalError, connection, transaction

from relais.audit.models import AuditEvent
from relais.audit.services import AuditError, audit_record
from relais.patients import selectors
from relais.patients.models import Patient
from relais.patients.services import patient_register
from tests.factories import identity

DB_REFUSALS = DatabaseError


def test_database_refuses_update_and_delete(patient: Any) -> None:
    event = AuditEvent.objects.latest("id")
    with pytest.raises(DB_REFUSALS), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DB_REFUSALS), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(DB_REFUSALS), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent")
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


def test_a_page_view_writes_one_event_with_request_details(as_user: Any, owner: Any, patient: Any) -> None:
    before = AuditEvent.objects.count()
    response = as_user(owner).get(f"/patients/{patient.pk}/", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 200
    event = AuditEvent.objects.filter(action="patient.view").latest("id")
    assert AuditEvent.objects.count() >= before + 1
    assert event.actor_id == owner.pk
    assert event.pharmacy_id == owner.pharmacy_id
    assert event.object_ids == [str(patient.pk)]
    assert event.client_ip == "203.0.113.7"
    assert event.request_id == response["X-Request-ID"]
    assert event.occurred_at is not None


def test_writes_are_audited_with_the_data(owner: Any, patient: Any, screening: Any) -> None:
    actions = set(AuditEvent.objects.filter(actor_id=owner.pk).values_list("action", flat=True))
    assert {"patient.create", "screening.create"} <= actions


def test_access_fails_when_its_event_cannot_be_written(owner: Any, patient: Any, monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("disk full")

    monkeypatch.setattr(AuditEvent.objects, "create", broken)
    with pytest.raises(AuditError):
        selectors.patient_get(actor=owner, patient_id=patient.pk)
    count = Patient.objects.count()
    with pytest.raises(AuditError):
        patient_register(actor=owner, identity=identity(last_name="AUTRE", nir=""))
    assert Patient.objects.count() == count  # the write rolled back with its failed audit


def test_view_answers_500_not_data_when_audit_fails(as_user: Any, owner: Any, patient: Any, monkeypatch: Any) -> None:
    client = as_user(owner)
    client.raise_request_exception = False

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("disk full")

    monkeypatch.setattr(AuditEvent.objects, "create", broken)
    response = client.get(f"/patients/{patient.pk}/")
    assert response.status_code == 500
    assert b"DURAND" not in response.content


def test_audit_outside_a_transaction_is_refused(owner: Any, monkeypatch: Any) -> None:
    # pytest-django wraps every test in a transaction, so pretend there is none.
    monkeypatch.setattr("relais.audit.services.connection", type("NoTransaction", (), {"in_atomic_block": False})())
    with pytest.raises(AuditError):
        audit_record(actor=owner, action="patient.view")


def test_who_saw_this_patient_is_one_command(as_user: Any, owner: Any, colleague: Any, stranger: Any, patient: Any) -> None:
    import io
    import json

    from django.core.management import call_command

    as_user(colleague).get(f"/patients/{patient.pk}/", REMOTE_ADDR="198.51.100.9")
    as_user(stranger).get(f"/patients/{patient.pk}/")
    out = io.StringIO()
    call_command("audit_query", "--object", str(patient.pk), "--json", stdout=out, stderr=io.StringIO())
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {(r["actor"], r["action"]) for r in rows} >= {(owner.email, "patient.create"), (colleague.email, "patient.view")}
    assert stranger.email not in {r["actor"] for r in rows}
    assert any(r["ip"] == "198.51.100.9" for r in rows)


def test_each_event_indexes_the_objects_it_names(owner: Any, patient: Any, screening: Any) -> None:
    from relais.audit.models import AuditSubject

    event = AuditEvent.objects.filter(action="screening.create").latest("id")
    assert set(AuditSubject.objects.filter(event_id=event.pk).values_list("object_id", flat=True)) == {screening.pk, patient.pk}
    with pytest.raises(DB_REFUSALS), transaction.atomic():
        AuditSubject.objects.filter(event_id=event.pk).delete()


def test_a_batch_records_nothing_when_its_events_cannot_be_written(owner: Any, patient: Any, monkeypatch: Any) -> None:
    """The batch path writes its events with one INSERT (AuditBuffer): a failure there refuses the whole set of tests."""
    from relais.core import bulk
    from relais.intake.services import IntakeRequest, screenings_intake
    from relais.screenings.models import Screening
    from tests.factories import screening_input

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("disk full")

    monkeypatch.setattr(bulk.PreparedDictInsert, "execute", broken)  # the INSERT, run inside the transaction
    patients, screenings = Patient.objects.count(), Screening.objects.count()
    requests = [
        IntakeRequest(data=screening_input(), patient_id=patient.pk),
        IntakeRequest(data=screening_input(), identity=identity(last_name="NOUVEAU", nir="")),
    ]
    with pytest.raises(AuditError):
        screenings_intake(actor=owner, requests=requests)
    assert (Patient.objects.count(), Screening.objects.count()) == (patients, screenings)
