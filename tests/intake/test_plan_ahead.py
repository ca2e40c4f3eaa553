"""Tests planned before the write transaction (issue 13): the transaction checks what the plan read and plans again
when a concurrent request changed it, so planning early never records a second patient or a second test."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from relais.intake.services import (
    ACCEPTED,
    DUPLICATE,
    IntakeRequest,
    screening_intake,
    screenings_commit,
    screenings_plan,
    screenings_plan_ahead,
)
from relais.intake.services import _still_valid as still_valid
from relais.patients.models import Patient
from relais.screenings.models import Screening
from tests.factories import identity, screening_input


def _commit(plan: Any) -> list[Any]:
    with transaction.atomic():
        return screenings_commit(plan)


def test_a_plan_made_ahead_writes_what_it_planned(owner: Any) -> None:
    requests = [IntakeRequest(data=screening_input(), identity=identity(last_name=name, nir="")) for name in ("ALPHA", "BRAVO")]
    plan = screenings_plan(actor=owner, requests=requests, now=timezone.now())
    assert Screening.objects.count() == 0  # planning writes nothing
    outcomes = _commit(plan)
    assert [o.status for o in outcomes] == [ACCEPTED, ACCEPTED]
    assert Screening.objects.count() == 2 and Patient.objects.count() == 2
    assert all(s.certificate and s.outbox.count() == 1 for s in Screening.objects.all())


def test_a_patient_registered_meanwhile_is_matched_not_registered_twice(owner: Any) -> None:
    person = identity(last_name="CHARLIE", nir="")
    plan = screenings_plan(actor=owner, requests=[IntakeRequest(data=screening_input(), identity=person)], now=timezone.now())
    other = screening_intake(actor=owner, data=screening_input(sampled_at=timezone.now() - timedelta(hours=2)), identity=person)
    (outcome,) = _commit(plan)
    assert outcome.status == ACCEPTED and outcome.patient_id == other.patient_id
    assert Patient.objects.count() == 1


def test_the_same_test_recorded_meanwhile_is_answered_as_its_duplicate(owner: Any, patient: Any) -> None:
    data = screening_input()
    plan = screenings_plan(actor=owner, requests=[IntakeRequest(data=data, patient_id=patient.pk)], now=timezone.now())
    first = screening_intake(actor=owner, data=data, patient_id=patient.pk)
    (outcome,) = _commit(plan)
    assert outcome.status == DUPLICATE and outcome.screening.pk == first.screening.pk
    assert Screening.objects.count() == 1


def test_a_returning_patient_to_update_is_planned_inside_the_transaction(owner: Any, patient: Any) -> None:
    newer = identity(email="nouvelle.adresse@example.org")
    assert screenings_plan_ahead(actor=owner, requests=[IntakeRequest(data=screening_input(), identity=newer)], now=timezone.now()) is None
    outcome = screening_intake(actor=owner, data=screening_input(), identity=newer)
    assert outcome.status == ACCEPTED and outcome.patient_id == patient.pk
    assert Patient.objects.get(pk=patient.pk).email == "nouvelle.adresse@example.org"


def test_a_plan_whose_reads_did_not_change_is_still_valid(owner: Any, patient: Any) -> None:
    """The re-check compares what it reads again with what the plan read: equal when nothing changed (else every plan
    would be made twice, correct but slow). Patients matched by identity and by id, a new one, an earlier test."""
    earlier = screening_input(sampled_at=timezone.now() - timedelta(hours=3))
    screening_intake(actor=owner, data=earlier, patient_id=patient.pk)
    requests = [
        IntakeRequest(data=screening_input(), identity=identity()),  # the fixture's patient, matched, nothing to update
        IntakeRequest(data=screening_input(sampled_at=timezone.now() - timedelta(hours=1)), patient_id=patient.pk),
        IntakeRequest(data=earlier, patient_id=patient.pk),  # a duplicate of the earlier test
        IntakeRequest(data=screening_input(), identity=identity(last_name="NOUVEAU", nir="")),
    ]
    plan = screenings_plan_ahead(actor=owner, requests=requests, now=timezone.now())
    assert plan is not None and plan.reads[1] and plan.reads[2], "the plan matched a stored patient and an earlier test"
    with transaction.atomic():
        assert still_valid(plan)
        Patient.objects.filter(pk=patient.pk).update(updated_at=timezone.now() + timedelta(seconds=1))
        assert not still_valid(plan)
