"""The test queue's services: a swab without result is a pending test, never a screening, so nothing reaches the
national platform or the patient before the result; entering it goes through the intake's one road in the transaction
that closes the row; every step audited in its transaction; another pharmacy's rows do not exist."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.certificates.models import Certificate
from relais.intake.services import screening_record
from relais.notify.models import Notification
from relais.patients.models import Patient
from relais.patients.services import patient_merge, patient_register
from relais.retention.services import _delete_patients
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED, RESULT_NOT_DETECTED
from relais.testqueue import services
from relais.testqueue.models import PendingTest
from relais.transfer.models import OutboxMessage
from tests.factories import identity, screening_input

pytestmark = pytest.mark.django_db
NEG = {"sars-cov-2": RESULT_NOT_DETECTED}


def _swab(**overrides: Any) -> Any:
    values: dict[str, Any] = {"results": {}, "sampled_at": timezone.now() - timedelta(minutes=3), **overrides}
    return screening_input(**values)


def _actions(*ids: Any) -> list[str]:
    wanted = {str(i) for i in ids}
    return [e.action for e in AuditEvent.objects.order_by("pk") if wanted & {str(o) for o in e.object_ids or []}]


def test_start_keeps_the_swab_and_sends_nothing(owner: Any, patient: Any) -> None:
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(kit_lot="AB12", symptoms="yes", symptom_onset=date.today()))
    assert row.is_open and row.patient_id == patient.pk and row.device_id == "1232" and row.kit_lot == "AB12"
    assert row.symptoms == "yes" and row.started_by == owner and row.pharmacy_id == owner.tenant_id
    assert Screening.objects.count() == 0
    assert OutboxMessage.objects.count() == 0 and Notification.objects.count() == 0 and Certificate.objects.count() == 0
    assert "queue.start" in _actions(row.pk)
    event = AuditEvent.objects.get(action="queue.start")
    assert {str(i) for i in event.object_ids} == {str(row.pk), str(patient.pk)}
    assert not event.detail or "AB12" not in str(event.detail)


def test_start_ignores_results_and_checks_everything_else(owner: Any, patient: Any) -> None:
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=screening_input(results=NEG))
    assert Screening.objects.count() == 0 and row.is_open  # results given with a swab are not a recorded test
    with pytest.raises(ValidationError) as exc:
        services.queue_start(
            actor=owner,
            patient_id=patient.pk,
            data=_swab(device_id="nope", information_notice_given=False, kit_expiry=date(2000, 1, 1)),
        )
    assert {"device", "information_notice_given", "kit_expiry"} <= set(exc.value.message_dict)
    assert not any(k.startswith("result") for k in exc.value.message_dict)
    with pytest.raises(ValidationError) as exc:
        services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=timezone.now() + timedelta(hours=1)))
    assert set(exc.value.message_dict) == {"sampled_at"}
    assert PendingTest.objects.count() == 1


def test_the_same_swab_twice_is_one_row(owner: Any, patient: Any) -> None:
    data = _swab()
    first = services.queue_start(actor=owner, patient_id=patient.pk, data=data)
    again = services.queue_start(actor=owner, patient_id=patient.pk, data=data)
    assert again.pk == first.pk and PendingTest.objects.count() == 1
    assert _actions(first.pk).count("queue.start") == 1


def test_result_records_the_test_through_intake_and_closes_the_row(owner: Any, colleague: Any, patient: Any) -> None:
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(kit_lot="LOT7", symptoms="no"))
    outcome = services.queue_result(actor=colleague, pending_id=row.pk, results={"sars-cov-2": RESULT_DETECTED})
    screening = outcome.screening
    assert not outcome.is_duplicate
    assert screening.patient_id == patient.pk and screening.kit_lot == "LOT7" and screening.symptoms == "no"
    assert screening.sampled_at == row.sampled_at and screening.recorded_by == colleague
    assert {r.result for r in screening.results.all()} == {RESULT_DETECTED}
    assert OutboxMessage.objects.filter(screening=screening).count() == 1  # goes to the national platform now
    assert Notification.objects.filter(screening=screening).exists()
    row.refresh_from_db()
    assert not row.is_open and row.screening_id == screening.pk and row.done_at and row.closed_by == colleague
    assert _actions(row.pk) == ["queue.start", "queue.result"]
    assert "screening.create" in _actions(screening.pk)
    with pytest.raises(PendingTest.DoesNotExist):  # done: no second result
        services.queue_result(actor=owner, pending_id=row.pk, results=NEG)
    assert Screening.objects.count() == 1


def test_a_refused_result_leaves_the_row_pending_and_names_the_field(owner: Any, patient: Any) -> None:
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab())
    with pytest.raises(ValidationError) as exc:
        services.queue_result(actor=owner, pending_id=row.pk, results={})
    assert "result_sars-cov-2" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.queue_result(actor=owner, pending_id=row.pk, results={"sars-cov-2": "maybe"})
    assert "result_sars-cov-2" in exc.value.message_dict
    # Left in the queue past the limit every road applies: the sampling time is named.
    PendingTest.objects.filter(pk=row.pk).update(sampled_at=timezone.now() - timedelta(days=31))
    with pytest.raises(ValidationError) as exc:
        services.queue_result(actor=owner, pending_id=row.pk, results=NEG)
    assert "sampled_at" in exc.value.message_dict
    row.refresh_from_db()
    assert row.is_open and Screening.objects.count() == 0 and OutboxMessage.objects.count() == 0
    assert "queue.result" not in _actions(row.pk)


def test_a_test_already_recorded_is_refused_and_the_row_stays(owner: Any, patient: Any) -> None:
    data = _swab()
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=data)
    recorded = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(sampled_at=data.sampled_at))
    with pytest.raises(ValidationError) as exc:
        services.queue_result(actor=owner, pending_id=row.pk, results=NEG)
    assert "Already recorded" in str(exc.value.message_dict["__all__"])
    row.refresh_from_db()
    assert row.is_open and Screening.objects.get().pk == recorded.pk and OutboxMessage.objects.count() == 1


def test_audit_failure_rolls_back_result_and_start(owner: Any, patient: Any, monkeypatch: Any) -> None:
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab())
    real = services.audit_record

    def failing(**kwargs: Any) -> Any:
        if kwargs["action"] in {"queue.result", "queue.start", "queue.cancel"}:
            raise RuntimeError("audit down")
        return real(**kwargs)

    monkeypatch.setattr(services, "audit_record", failing)
    with pytest.raises(RuntimeError):
        services.queue_result(actor=owner, pending_id=row.pk, results=NEG)
    row.refresh_from_db()
    assert row.is_open and Screening.objects.count() == 0 and OutboxMessage.objects.count() == 0
    assert Notification.objects.count() == 0
    with pytest.raises(RuntimeError):
        services.queue_cancel(actor=owner, pending_id=row.pk, reason="patient left")
    row.refresh_from_db()
    assert row.is_open
    with pytest.raises(RuntimeError):
        services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=timezone.now() - timedelta(minutes=1)))
    assert PendingTest.objects.count() == 1


def test_cancel_needs_a_reason_keeps_it_encrypted_and_out_of_the_log(owner: Any, patient: Any) -> None:
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab())
    with pytest.raises(ValidationError) as exc:
        services.queue_cancel(actor=owner, pending_id=row.pk, reason="  ")
    assert "reason" in exc.value.message_dict
    with pytest.raises(ValidationError):
        services.queue_cancel(actor=owner, pending_id=row.pk, reason="x" * 501)
    services.queue_cancel(actor=owner, pending_id=row.pk, reason="Invalid: no control line")
    row.refresh_from_db()
    assert row.cancelled_at and row.cancel_reason == "Invalid: no control line" and row.screening_id is None
    stored = PendingTest.objects.filter(pk=row.pk).values_list("cancel_reason", flat=True).get()
    assert "control" not in str(stored)
    assert "control" not in str(AuditEvent.objects.get(action="queue.cancel").detail)
    with pytest.raises(PendingTest.DoesNotExist):
        services.queue_result(actor=owner, pending_id=row.pk, results=NEG)
    assert Screening.objects.count() == 0 and OutboxMessage.objects.count() == 0
    assert services.queue_list(actor=owner) == []


def test_tenancy_owner_colleague_stranger(owner: Any, colleague: Any, stranger: Any, operator: Any, patient: Any) -> None:
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab())
    assert [e.test.pk for e in services.queue_list(actor=colleague)] == [row.pk]
    assert services.queue_get(actor=colleague, pending_id=row.pk).test.pk == row.pk
    assert services.queue_list(actor=stranger) == []
    for call in (
        lambda: services.queue_get(actor=stranger, pending_id=row.pk),
        lambda: services.queue_result(actor=stranger, pending_id=row.pk, results=NEG),
        lambda: services.queue_cancel(actor=stranger, pending_id=row.pk, reason="no"),
    ):
        with pytest.raises(PendingTest.DoesNotExist):
            call()
    with pytest.raises(Patient.DoesNotExist):  # another pharmacy's patient
        services.queue_start(actor=stranger, patient_id=patient.pk, data=_swab())
    with pytest.raises(PermissionDenied):
        services.queue_list(actor=operator)
    assert services.queue_counts(actor=stranger).in_progress == 0
    row.refresh_from_db()
    assert row.is_open
    services.queue_result(actor=colleague, pending_id=row.pk, results=NEG)  # a colleague may enter it


def test_list_sorted_by_readiness_with_countdown_and_overdue(owner: Any, patient: Any) -> None:
    now = timezone.now()
    other = patient_register(actor=owner, identity=identity(last_name="MARTIN", nir=""))
    third = patient_register(actor=owner, identity=identity(last_name="PETIT", nir=""))
    waiting = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=now - timedelta(minutes=2)), now=now)
    ready = services.queue_start(actor=owner, patient_id=other.pk, data=_swab(sampled_at=now - timedelta(minutes=20)), now=now)
    late = services.queue_start(actor=owner, patient_id=third.pk, data=_swab(sampled_at=now - timedelta(minutes=60)), now=now)
    entries = services.queue_list(actor=owner, now=now)
    assert [e.test.pk for e in entries] == [late.pk, ready.pk, waiting.pk]
    e_late, e_ready, e_waiting = entries
    assert e_waiting.countdown == "13:00" and not e_waiting.ready and not e_waiting.overdue  # device 1232: 15 minutes
    assert e_ready.ready and not e_ready.overdue and e_ready.countdown == "0:00"
    assert e_late.ready and e_late.overdue and e_late.minutes_without_result == 45
    assert services.queue_counts(actor=owner, now=now) == services.QueueCounts(in_progress=3, overdue=1)
    with override_settings(RELAIS_QUEUE_OVERDUE_MINUTES=1):
        assert services.queue_counts(actor=owner, now=now).overdue == 2
    event = AuditEvent.objects.filter(action="queue.list").latest("pk")
    assert {str(patient.pk), str(other.pk), str(third.pk)} <= {str(i) for i in event.object_ids}


def test_reading_time_is_the_devices(owner: Any, patient: Any) -> None:
    from relais.screenings.models import Device

    Device.objects.filter(pk="1232").update(reading_minutes=30)
    now = timezone.now()
    services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=now - timedelta(minutes=20)), now=now)
    (entry,) = services.queue_list(actor=owner, now=now)
    assert not entry.ready and entry.countdown == "10:00"


def test_version_changes_with_the_open_rows_only(owner: Any, patient: Any) -> None:
    empty = services.queue_version(actor=owner)
    row = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab())
    one = services.queue_version(actor=owner)
    assert one != empty
    services.queue_cancel(actor=owner, pending_id=row.pk, reason="left")
    assert services.queue_version(actor=owner) == empty


def test_erasing_the_patient_takes_the_pending_rows(owner: Any, patient: Any) -> None:
    """The retention purge deletes an expired patient with the collector-free delete: CASCADE, not PROTECT, so the
    purge does not fail on a patient with a swab in the queue and no pending row outlives its patient."""
    services.queue_start(actor=owner, patient_id=patient.pk, data=_swab())
    cancelled = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=timezone.now() - timedelta(minutes=9)))
    services.queue_cancel(actor=owner, pending_id=cancelled.pk, reason="left")
    assert _delete_patients([patient.pk]) == 1
    assert PendingTest.objects.count() == 0 and not Patient.objects.filter(pk=patient.pk).exists()


def test_a_done_row_goes_with_its_test(owner: Any, patient: Any) -> None:
    from relais.retention.services import _delete_screenings

    row = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab())
    outcome = services.queue_result(actor=owner, pending_id=row.pk, results=NEG)
    _delete_screenings([outcome.screening.pk])
    assert not PendingTest.objects.filter(pk=row.pk).exists()


def test_merge_keeps_the_queue_working(owner: Any, patient: Any) -> None:
    twin = patient_register(actor=owner, identity=identity(nir="", phone=""), allow_duplicate=True)
    row = services.queue_start(actor=owner, patient_id=twin.pk, data=_swab())
    patient_merge(actor=owner, duplicate_id=twin.pk, into_id=patient.pk)
    (entry,) = services.queue_list(actor=owner)
    assert entry.test.pk == row.pk
    outcome = services.queue_result(actor=owner, pending_id=row.pk, results=NEG)
    assert outcome.screening.patient_id == patient.pk  # recorded on the kept record
    with pytest.raises(Patient.DoesNotExist):  # a merged record takes no new swab
        services.queue_start(actor=owner, patient_id=twin.pk, data=_swab(sampled_at=timezone.now() - timedelta(minutes=1)))


def test_purge_deletes_cancelled_and_abandoned_rows_after_the_limit(owner: Any, patient: Any) -> None:
    now = timezone.now()
    fresh = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=now - timedelta(minutes=5)))
    old = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=now - timedelta(minutes=6)))
    gone = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=now - timedelta(minutes=7)))
    services.queue_cancel(actor=owner, pending_id=gone.pk, reason="left")
    done = services.queue_start(actor=owner, patient_id=patient.pk, data=_swab(sampled_at=now - timedelta(minutes=8)))
    services.queue_result(actor=owner, pending_id=done.pk, results=NEG)
    PendingTest.objects.filter(pk__in=[old.pk, gone.pk, done.pk]).update(sampled_at=now - timedelta(days=31))
    assert services.purge(now=now) == {"deleted": 2}
    assert set(PendingTest.objects.values_list("pk", flat=True)) == {fresh.pk, done.pk}
    assert AuditEvent.objects.filter(action="queue.purge").count() == 1
    assert services.purge(now=now) == {"deleted": 0}
    from relais.core.schedule import jobs

    assert jobs()["queue.purge"].run is services.purge_job  # run daily by the scheduler
