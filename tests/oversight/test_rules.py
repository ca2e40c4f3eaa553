"""Each unusual-access rule fires on a crafted history and stays quiet on a normal one; runs are idempotent."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from relais.api.models import ApiClient, ApiClientKey
from relais.audit.models import AuditEvent, AuditSubject
from relais.core.schedule import jobs
from relais.oversight.models import Alert, AlertKind
from relais.oversight.rules import evaluate, run_job
from relais.patients.services import patient_register
from tests.factories import identity

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 25, 20, 0, tzinfo=PARIS)  # a Wednesday evening


def at(day_offset: int, hour: int, minute: int = 0) -> datetime:
    return (NOW + timedelta(days=day_offset)).replace(hour=hour, minute=minute)


def events(
    actor: Any,
    action: str,
    ids: list[Any],
    when: list[datetime],
    *,
    object_type: str = "patient",
    ip: str = "127.0.0.1",
    pharmacy_id: Any = None,
) -> list[AuditEvent]:
    rows = [
        AuditEvent(
            occurred_at=w,
            actor_id=actor.pk if actor else None,
            actor_label=actor.email if actor else "result_link",
            actor_role=actor.role if actor else "",
            pharmacy_id=pharmacy_id or (actor.pharmacy_id if actor else None),
            action=action,
            object_type=object_type,
            object_ids=[str(i) for i in ids],
            client_ip=ip,
            channel="web",
        )
        for w in when
    ]
    made = AuditEvent.objects.bulk_create(rows)
    AuditSubject.objects.bulk_create([AuditSubject(event_id=e.pk, object_id=uuid.UUID(str(i))) for e in made for i in ids])
    return made


def kinds() -> list[str]:
    return sorted(Alert.objects.values_list("kind", flat=True))


def test_the_job_is_registered() -> None:
    assert jobs()["oversight.rules"].run is run_job


def test_volume_fires_above_three_times_the_norm_and_the_floor(colleague: Any, patient: Any, screening: Any) -> None:
    for day in range(1, 15):
        events(colleague, "patient.view", [patient.pk], [at(-day, 10, m) for m in range(10)])
    events(colleague, "patient.view", [patient.pk], [at(0, 9, m) for m in range(30)])
    evaluate(now=NOW)
    assert AlertKind.VOLUME not in kinds()  # 30 reads: not above max(3 x 10, 30)
    made = events(colleague, "patient.view", [patient.pk], [at(0, 11)])
    evaluate(now=NOW)
    alert = Alert.objects.get(kind=AlertKind.VOLUME)
    assert alert.actor_id == colleague.pk and alert.pharmacy_id == colleague.pharmacy_id
    assert alert.figures["reads"] == 31 and alert.figures["median"] == 10 and alert.figures["threshold"] == 30
    assert made[0].pk in alert.event_ids and len(alert.event_ids) == 31


def test_volume_is_measured_against_the_account_own_norm(colleague: Any, patient: Any, screening: Any) -> None:
    for day in range(1, 15):
        events(colleague, "screening.view", [uuid.uuid4(), patient.pk], [at(-day, 10, m) for m in range(25)], object_type="screening")
    events(colleague, "screening.view", [uuid.uuid4(), patient.pk], [at(0, 10, m) for m in range(60)], object_type="screening")
    evaluate(now=NOW)
    assert kinds() == []  # 60 reads for someone who reads 25 a day: under 75
    events(colleague, "screening.view", [uuid.uuid4(), patient.pk], [at(0, 12, m) for m in range(20)], object_type="screening")
    evaluate(now=NOW)
    assert kinds() == [AlertKind.VOLUME]


def test_reads_outside_opening_hours_fire_and_reads_inside_do_not(colleague: Any, owner: Any, patient: Any, screening: Any) -> None:
    events(owner, "patient.view", [patient.pk], [at(0, 7, 5), at(0, 12), at(0, 19, 59)])
    evaluate(now=NOW)
    assert kinds() == []
    events(colleague, "patient.view", [patient.pk], [at(0, 6, 30), at(-1, 22, 15)])
    evaluate(now=NOW)
    alerts = Alert.objects.filter(kind=AlertKind.OFF_HOURS).order_by("window_start")
    assert [a.actor_id for a in alerts] == [colleague.pk, colleague.pk]  # one per day: yesterday 22:15, today 06:30
    assert alerts[1].figures["first"] == "06:30" and alerts[1].figures["opening"] == "07:00-21:00"


def test_sunday_is_closed_unless_configured(colleague: Any, patient: Any, screening: Any) -> None:
    sunday = NOW + timedelta(days=4)  # 2026-11-29
    events(colleague, "patient.view", [patient.pk], [sunday.replace(hour=11)])
    with override_settings(RELAIS_OVERSIGHT={"closed_weekdays": []}):
        evaluate(now=sunday)
    assert kinds() == []
    evaluate(now=sunday)
    assert kinds() == [AlertKind.OFF_HOURS]


def test_reading_a_patient_never_tested_at_the_pharmacy_fires(owner: Any, colleague: Any, patient: Any, screening: Any) -> None:
    untested = patient_register(actor=owner, identity=identity(last_name="JAMAIS", nir="", email="", phone=""))
    events(colleague, "patient.view", [patient.pk], [at(0, 10)])  # tested here: normal
    events(colleague, "patient.view", [untested.pk], [at(0, 19, 30)])  # too recent: a test may follow
    evaluate(now=NOW)
    assert kinds() == []
    made = events(colleague, "patient.view", [untested.pk], [at(0, 11)])
    evaluate(now=NOW)
    alert = Alert.objects.get()
    assert alert.kind == AlertKind.FOREIGN_PATIENT and alert.actor_id == colleague.pk
    assert alert.event_ids == [made[0].pk] and alert.figures["patients"] == 1


def test_repeated_wrong_birth_dates_fire_per_link_and_per_address(pharmacy: Any, patient: Any) -> None:
    link = uuid.uuid4()
    events(
        None,
        "result_link.wrong_birth_date",
        [link, patient.pk],
        [at(0, 10, m) for m in range(4)],
        object_type="result_link",
        pharmacy_id=pharmacy.pk,
    )
    evaluate(now=NOW)
    assert kinds() == []
    events(None, "result_link.locked", [link, patient.pk], [at(0, 10, 30)], object_type="result_link", pharmacy_id=pharmacy.pk)
    evaluate(now=NOW)
    alert = Alert.objects.get()
    assert alert.kind == AlertKind.BIRTH_DATE and alert.figures["failures"] == 5 and alert.figures["locked"] is True
    assert alert.pharmacy_id == pharmacy.pk
    for _ in range(3):  # someone trying several links from one address
        events(
            None,
            "result_link.wrong_birth_date",
            [uuid.uuid4(), patient.pk],
            [at(0, 12, m) for m in range(4)],
            object_type="result_link",
            ip="203.0.113.9",
            pharmacy_id=pharmacy.pk,
        )
    evaluate(now=NOW)
    by_ip = Alert.objects.get(key__startswith="birth_date|ip|")
    assert by_ip.figures["links"] == 3 and by_ip.figures["failures"] == 12 and "203.0.113.9" not in by_ip.key


def test_a_new_api_key_reading_in_bulk_fires_an_old_one_does_not(registered: Any, patient: Any, screening: Any) -> None:
    client, _ = registered
    service = client.service_user
    events(
        service,
        "screening.api_read",
        [uuid.uuid4(), patient.pk],
        [at(0, 10) + timedelta(seconds=s) for s in range(199)],
        object_type="screening",
    )
    evaluate(now=NOW)
    assert kinds() == []
    events(service, "screening.api_read", [uuid.uuid4(), patient.pk], [at(0, 11)], object_type="screening")
    ApiClient.objects.filter(pk=client.pk).update(created_at=NOW - timedelta(days=30))
    ApiClientKey.objects.filter(client=client).update(created_at=NOW - timedelta(days=30))
    evaluate(now=NOW)
    assert kinds() == []  # 200 reads, but the key is a month old
    ApiClientKey.objects.filter(client=client).update(created_at=NOW - timedelta(days=2))  # a new key was added
    evaluate(now=NOW)
    alert = Alert.objects.get()
    assert alert.kind == AlertKind.NEW_KEY_BULK and alert.api_client_id == client.pk and alert.figures["reads"] == 200


def test_running_twice_over_the_same_window_makes_no_duplicate(colleague: Any, patient: Any, pharmacy: Any, screening: Any) -> None:
    events(colleague, "patient.view", [patient.pk], [at(0, 23 - 1, 30), at(0, 5)])
    link = uuid.uuid4()
    events(
        None,
        "result_link.wrong_birth_date",
        [link, patient.pk],
        [at(0, 10, m) for m in range(6)],
        object_type="result_link",
        pharmacy_id=pharmacy.pk,
    )
    first = run_job(NOW)
    assert first["new"] == 2
    second = run_job(NOW)
    third = run_job(NOW + timedelta(minutes=30))
    assert second["new"] == third["new"] == 0 and Alert.objects.count() == 2
    assert AuditEvent.objects.filter(action="oversight.run").count() == 3


def test_a_normal_day_raises_nothing(owner: Any, colleague: Any, patient: Any, screening: Any) -> None:
    for day in range(0, 15):
        events(owner, "patient.view", [patient.pk], [at(-day, 9 + h) for h in range(8)])
        events(colleague, "screening.view", [screening.pk, patient.pk], [at(-day, 10 + h) for h in range(5)], object_type="screening")
    events(
        None,
        "result_link.wrong_birth_date",
        [uuid.uuid4(), patient.pk],
        [at(0, 10)],
        object_type="result_link",
        pharmacy_id=patient.pharmacy_id,
    )
    report = evaluate(now=NOW)
    assert report["new"] == 0 and kinds() == []
