"""The retention purge: each class at its boundary, dry run, --now, newer tests, kill and resume, audit, schedule."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.utils import timezone

from relais.api.models import IdempotentResponse
from relais.audit.models import AuditEvent
from relais.certificates.models import Certificate
from relais.core import schedule
from relais.notify.models import Notification, NotificationStatus, ResultLink
from relais.patients.models import Patient
from relais.retention import services
from relais.retention.config import DEFAULT_RETENTION, parse_retention
from relais.retention.services import purge
from relais.screenings.models import Screening, ScreeningResult
from relais.screenings.vocab import RESULT_DETECTED
from relais.submissions.models import Submission, SubmissionItem
from relais.transfer.models import OutboxMessage, TransferStatus
from tests.retention.helpers import days, new_patient, record_test, settle


def _counts() -> dict[str, int]:
    return {
        "patients": Patient.objects.count(),
        "screenings": Screening.objects.count(),
        "results": ScreeningResult.objects.count(),
        "notifications": Notification.objects.count(),
        "links": ResultLink.objects.count(),
        "outbox": OutboxMessage.objects.count(),
        "certificates": Certificate.objects.count(),
    }


def test_settings_defaults_overrides_and_refusals() -> None:
    assert parse_retention("", {}) == DEFAULT_RETENTION
    assert DEFAULT_RETENTION["identities"] == 92 and DEFAULT_RETENTION["identities_positive"] == 184
    assert DEFAULT_RETENTION["audit"] == 365
    assert all(DEFAULT_RETENTION[name] < 92 for name in DEFAULT_RETENTION if name not in {"identities", "identities_positive", "audit"})
    parsed = parse_retention('{"sessions": 3}', {"RELAIS_RETENTION_AUDIT": "400"})
    assert parsed["sessions"] == 3 and parsed["audit"] == 400
    with pytest.raises(ImproperlyConfigured, match="'sesions'"):
        parse_retention('{"sesions": 3}', {})
    with pytest.raises(ImproperlyConfigured, match="'audit'"):
        parse_retention("", {"RELAIS_RETENTION_AUDIT": "0"})
    with pytest.raises(ImproperlyConfigured, match="'notifications'"):
        parse_retention('{"notifications": -1}', {})
    with pytest.raises(ImproperlyConfigured, match="'webhook_deliveries'"):
        parse_retention('{"webhook_deliveries": "soon"}', {})


def test_negative_test_goes_92_days_after_sampling_not_a_day_before(owner: Any) -> None:
    patient = new_patient(owner, 1)
    screening = record_test(owner, patient)
    settle()
    sampled = screening.sampled_at
    report = purge(now=sampled + days(91))
    assert report["classes"]["identities"]["screenings"] == 0 and Patient.objects.filter(pk=patient.pk).exists()
    assert Screening.objects.filter(pk=screening.pk).exists()
    report = purge(now=sampled + days(92))
    identities = report["classes"]["identities"]
    assert (identities["screenings"], identities["patients"], identities["undelivered"]) == (1, 1, 0)
    assert _counts() == dict.fromkeys(_counts(), 0)


def test_positive_test_stays_184_days(owner: Any) -> None:
    patient = new_patient(owner, 1)
    screening = record_test(owner, patient, results={"sars-cov-2": RESULT_DETECTED})
    settle()
    purge(now=screening.sampled_at + days(183))
    assert Screening.objects.filter(pk=screening.pk).exists() and Patient.objects.filter(pk=patient.pk).exists()
    purge(now=screening.sampled_at + days(184))
    assert not Screening.objects.exists() and not Patient.objects.exists()


def test_undelivered_tests_are_kept_and_reported(owner: Any) -> None:
    patient = new_patient(owner, 1)
    screening = record_test(owner, patient)  # its outbox message is still pending
    report = purge(now=screening.sampled_at + days(200))
    assert report["classes"]["identities"]["undelivered"] == 1
    assert report["classes"]["identities"]["screenings"] == 0
    assert Screening.objects.filter(pk=screening.pk).exists() and Patient.objects.filter(pk=patient.pk).exists()


def test_dry_run_changes_nothing_and_counts_what_would_go(owner: Any) -> None:
    for n in range(3):
        record_test(owner, new_patient(owner, n))
    settle()
    before = _counts()
    events = AuditEvent.objects.count()
    later = timezone.now() + days(100)
    report = purge(now=later, dry_run=True)
    assert _counts() == before and AuditEvent.objects.count() == events
    assert report["dry_run"] is True
    assert report["classes"]["identities"]["screenings"] == 3 and report["classes"]["identities"]["patients"] == 3
    assert report["classes"]["notifications"]["rows"] == before["notifications"]
    assert report["classes"]["keys"]["keys_destroyed"] >= 1


def test_newer_test_keeps_newer_data_only(owner: Any) -> None:
    patient = new_patient(owner, 1)
    old = record_test(owner, patient)
    settle()
    old_links = set(ResultLink.objects.values_list("pk", flat=True))
    Screening.objects.filter(pk=old.pk).update(sampled_at=timezone.now() - days(100))
    Notification.objects.update(created_at=timezone.now() - days(100))
    new = record_test(owner, patient)
    settle()
    purge(now=timezone.now())
    assert not Screening.objects.filter(pk=old.pk).exists()
    assert list(Screening.objects.values_list("pk", flat=True)) == [new.pk]
    assert not ResultLink.objects.filter(pk__in=old_links).exists() and ResultLink.objects.exists()
    assert set(Notification.objects.values_list("screening_id", flat=True)) == {new.pk}
    fresh = Patient.objects.get(pk=patient.pk)
    assert fresh.last_name == "PATIENT-1" and fresh.email == "p1@example.org"


def _boundary(name: str, stamp: Any, make: Any, exists: Any) -> None:
    make()
    period = DEFAULT_RETENTION[name]
    report = purge(now=stamp() + timedelta(days=period) - timedelta(days=1))
    assert exists(), f"{name} purged a day early"
    report = purge(now=stamp() + timedelta(days=period, seconds=1))
    assert not exists(), f"{name} not purged at its boundary"
    assert report["classes"][name]["rows"] >= 1


def test_sessions_and_login_attempts_at_their_boundary(db: Any) -> None:
    expiry = timezone.now()
    _boundary(
        "sessions",
        lambda: expiry,
        lambda: Session.objects.create(session_key="s" * 32, session_data="x", expire_date=expiry),
        lambda: Session.objects.filter(session_key="s" * 32).exists(),
    )
    _boundary(
        "login_attempts",
        lambda: AccessAttempt.objects.get().attempt_time,
        lambda: AccessAttempt.objects.create(username="someone@test.example", ip_address="127.0.0.1", failures_since_start=1),
        lambda: AccessAttempt.objects.exists(),
    )


def test_idempotency_answers_at_their_boundary(registered: Any) -> None:
    client, _ = registered
    _boundary(
        "idempotency",
        lambda: IdempotentResponse.objects.get().created_at,
        lambda: IdempotentResponse.objects.create(client=client, key="k1", request_hash="h", status_code=200, body="{}"),
        lambda: IdempotentResponse.objects.exists(),
    )


def test_notifications_links_and_outbox_payloads_at_their_boundary(owner: Any) -> None:
    patient = new_patient(owner, 1)
    record_test(owner, patient)
    settle()
    acknowledged = OutboxMessage.objects.get().acknowledged_at
    purge(now=acknowledged + days(DEFAULT_RETENTION["outbox_payloads"] - 1))
    assert OutboxMessage.objects.get().ack_text != ""
    report = purge(now=acknowledged + days(DEFAULT_RETENTION["outbox_payloads"]))
    assert report["classes"]["outbox_payloads"]["rows"] == 1
    message = OutboxMessage.objects.get()
    assert message.ack_text == "" and message.status == TransferStatus.ACKNOWLEDGED  # the record stays, its text goes
    created = Notification.objects.order_by("created_at").first().created_at
    purge(now=created + days(DEFAULT_RETENTION["notifications"] - 1))
    assert Notification.objects.count() == 2 and ResultLink.objects.count() == 1
    report = purge(now=created + days(DEFAULT_RETENTION["notifications"]) + timedelta(seconds=1))
    assert report["classes"]["notifications"]["rows"] == 2 and not Notification.objects.exists()
    assert report["classes"]["result_links"]["rows"] == 1 and not ResultLink.objects.exists()
    assert Patient.objects.filter(pk=patient.pk).exists()  # still within its own retention


def test_pending_notifications_are_kept(owner: Any) -> None:
    record_test(owner, new_patient(owner, 1))
    OutboxMessage.objects.update(status=TransferStatus.ACKNOWLEDGED, acknowledged_at=timezone.now())
    purge(now=timezone.now() + days(60))
    assert Notification.objects.filter(status=NotificationStatus.PENDING).count() == 2


def test_submissions_and_their_items_at_their_boundary(owner: Any, patient: Any) -> None:
    submission = Submission.objects.create(pharmacy=owner.pharmacy, submitted_by=owner, kind="batch", status="done", content="")
    SubmissionItem.objects.create(submission=submission, position=1, status="rejected", errors='[{"value": "DURAND"}]')
    created = submission.created_at
    purge(now=created + days(DEFAULT_RETENTION["submissions"] - 1))
    assert SubmissionItem.objects.exists()
    report = purge(now=created + days(DEFAULT_RETENTION["submissions"]) + timedelta(seconds=1))
    assert report["classes"]["submissions"] == {"rows": 1, "items": 1, "seconds": report["classes"]["submissions"]["seconds"]}
    assert not Submission.objects.exists() and not SubmissionItem.objects.exists()


def test_purge_writes_audit_events_with_counts_only(owner: Any) -> None:
    patient = new_patient(owner, 1)
    screening = record_test(owner, patient)
    settle()
    purge(now=screening.sampled_at + days(93))
    events = AuditEvent.objects.filter(action__startswith="retention.")
    blob = json.dumps([[e.object_ids, e.detail] for e in events])
    assert str(patient.pk) not in blob and str(screening.pk) not in blob and "PATIENT" not in blob
    assert all(e.object_ids == [] for e in events)
    by_class = {e.detail["class"]: e.detail for e in events.filter(action="retention.purge")}
    assert by_class["screenings"] == {"class": "screenings", "rows": 1, "patients": 1}
    done = events.get(action="retention.purge_done")
    assert done.detail["classes"]["identities"] == {"screenings": 1, "patients": 1, "undelivered": 0}


def test_killed_purge_leaves_consistent_data_and_the_next_run_finishes(owner: Any) -> None:
    patients = [new_patient(owner, n) for n in range(5)]
    for patient in patients:
        record_test(owner, patient)
    settle()
    later = timezone.now() + days(100)

    def die(name: str, done: int) -> None:
        if name == "screenings":
            raise KeyboardInterrupt

    services.after_batch = die
    with pytest.raises(KeyboardInterrupt):
        purge(now=later, batch_size=2)
    services.after_batch = None
    assert Screening.objects.count() == 3  # the first batch (two tests, whole) committed, the rest untouched
    assert ScreeningResult.objects.count() == 3 and Certificate.objects.count() == 3 and OutboxMessage.objects.count() == 3
    assert Patient.objects.count() == 3  # each patient went in the same transaction as its last test
    report = purge(now=later, batch_size=2)
    assert report["classes"]["identities"]["screenings"] == 3 and report["classes"]["identities"]["patients"] == 3
    assert _counts() == dict.fromkeys(_counts(), 0)


def test_command_dry_run_now_and_json(owner: Any) -> None:
    screening = record_test(owner, new_patient(owner, 1))
    settle()
    out, err = io.StringIO(), io.StringIO()
    moment = (screening.sampled_at + days(92)).isoformat()
    call_command("purge", "--dry-run", "--now", moment, "--json", stdout=out, stderr=err)
    report = json.loads(out.getvalue())
    assert report["dry_run"] is True and report["now"] == moment
    assert report["classes"]["identities"]["screenings"] == 1 and Screening.objects.exists()
    assert set(report["classes"]) == set(services.iter_classes())
    call_command("purge", "--now", moment, "--json", stdout=(out := io.StringIO()), stderr=(err := io.StringIO()))
    assert json.loads(out.getvalue())["classes"]["identities"]["screenings"] == 1 and not Screening.objects.exists()
    assert "screenings" in err.getvalue()  # the progress bar


def test_job_registered_and_run_by_the_scheduler(owner: Any) -> None:
    assert schedule.jobs()["retention.purge"].every == timedelta(days=1)
    screening = record_test(owner, new_patient(owner, 1))
    settle()
    reports = schedule.run_due(now=screening.sampled_at + days(92))
    assert reports["retention.purge"]["classes"]["identities"]["screenings"] == 1
    assert not Screening.objects.exists()
