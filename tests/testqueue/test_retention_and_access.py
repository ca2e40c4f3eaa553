"""The queue and the patient's rights: the retention purge never fails on a pending test, never leaves one behind its
patient, but does not erase a patient whose swab waits for its result; the subject access export lists the swabs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from relais.patients.models import Patient
from relais.retention.services import purge
from relais.subject_access.pdf import subject_access_pdf
from relais.subject_access.services import export_for_staff
from relais.testqueue import services
from relais.testqueue.models import PendingTest
from tests.factories import screening_input
from tests.retention.helpers import days, new_patient, record_test, settle

pytestmark = pytest.mark.django_db


def _swab(actor: Any, patient: Any, *, at: Any = None) -> PendingTest:
    data = screening_input(results={}, sampled_at=at or timezone.now() - timedelta(minutes=2), kit_lot="LOT42")
    return services.queue_start(actor=actor, patient_id=patient.pk, data=data, now=at and at + timedelta(minutes=1))


def test_purge_removes_an_expired_patient_with_a_cancelled_swab(owner: Any) -> None:
    patient = new_patient(owner, 1)
    screening = record_test(owner, patient)
    row = _swab(owner, patient, at=screening.sampled_at + timedelta(minutes=5))
    services.queue_cancel(actor=owner, pending_id=row.pk, reason="left")
    settle()
    purge(now=screening.sampled_at + days(93))  # no PROTECT blocks the batch
    assert not Patient.objects.filter(pk=patient.pk).exists() and not PendingTest.objects.exists()


def test_purge_keeps_a_patient_whose_swab_waits(owner: Any) -> None:
    waiting = new_patient(owner, 2)
    never = new_patient(owner, 3)
    Patient.objects.filter(pk__in=[waiting.pk, never.pk]).update(created_at=timezone.now() - days(200))
    row = _swab(owner, waiting)
    purge(now=timezone.now())
    assert Patient.objects.filter(pk=waiting.pk).exists() and PendingTest.objects.filter(pk=row.pk).exists()
    assert not Patient.objects.filter(pk=never.pk).exists()  # a record never tested still goes
    services.queue_cancel(actor=owner, pending_id=row.pk, reason="left")
    purge(now=timezone.now())
    assert not Patient.objects.filter(pk=waiting.pk).exists() and not PendingTest.objects.exists()


def test_subject_access_lists_the_swabs(owner: Any, patient: Any) -> None:
    waiting = _swab(owner, patient)
    cancelled = _swab(owner, patient, at=timezone.now() - timedelta(minutes=30))
    services.queue_cancel(actor=owner, pending_id=cancelled.pk, reason="Patient left before reading")
    done = _swab(owner, patient, at=timezone.now() - timedelta(minutes=20))
    outcome = services.queue_result(actor=owner, pending_id=done.pk, results={"sars-cov-2": "260415000"})
    data = export_for_staff(actor=owner, patient_id=patient.pk, fmt="json")
    swabs = {s["queue_id"]: s for s in json.loads(json.dumps(data))["test_queue"]}
    assert swabs[str(waiting.pk)]["status"] == "waiting" and swabs[str(waiting.pk)]["kit_lot"] == "LOT42"
    assert swabs[str(cancelled.pk)]["status"] == "cancelled"
    assert swabs[str(cancelled.pk)]["cancel_reason"] == "Patient left before reading"
    assert swabs[str(done.pk)]["status"] == "done" and swabs[str(done.pk)]["test_id"] == str(outcome.screening.pk)
    assert {"queue.start", "queue.cancel", "queue.result"} <= {a["action"] for a in data["accesses"]}
    assert subject_access_pdf(export=data).startswith(b"%PDF")
