"""A worker killed between handing a message over and recording it: the resend carries the same id, the patient gets one SMS.

Real loopback SMTP server and SMS gateway (sandbox/messaging.py); the kill is simulated by an exception that no
`except Exception` catches, raised where the worker records the outcome, i.e. after the gateway accepted the message.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from relais.intake.services import screening_record
from relais.notify import services
from relais.notify.models import Channel, Notification, NotificationStatus
from sandbox.messaging import SmsGateway
from tests.factories import screening_input

pytestmark = pytest.mark.django_db


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler sees it."""


def _kill_when_recording(monkeypatch: Any, channel: str) -> None:
    real = services.notify_record

    def record(*, owner: str, outcomes: dict[Notification, services.SendOutcome], **kwargs: Any) -> int:
        if any(n.channel == channel for n in outcomes):
            raise Killed
        return real(owner=owner, outcomes=outcomes, **kwargs)

    monkeypatch.setattr("relais.notify.management.commands.notify_worker.notify_record", record)


def _leases_expire() -> None:
    Notification.objects.update(lease_until=timezone.now() - timedelta(seconds=1))


def test_sms_resent_after_a_crash_is_kept_once_by_the_gateway(messaging: Any, owner: Any, patient: Any, monkeypatch: Any) -> None:
    _smtp, sms = messaging
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    _kill_when_recording(monkeypatch, Channel.SMS)
    with pytest.raises(Killed):
        call_command("notify_worker", "--once")
    message = Notification.objects.get(screening=screening, channel=Channel.SMS)
    assert message.status == NotificationStatus.PENDING and message.handed_off_at is not None  # the trace of the hand-off
    assert [m["reference"] for m in sms.messages] == [str(message.pk)]
    monkeypatch.undo()
    _leases_expire()
    call_command("notify_worker", "--once")
    message.refresh_from_db()
    assert message.status == NotificationStatus.SENT and message.handed_off_at is None
    assert message.attempts == 2  # the interrupted hand-off counts
    assert len(sms.messages) == 1 and sms.repeats == 1  # the gateway dropped the repeat
    assert message.provider_id == sms.messages[0]["id"]  # and answered with the first message's id


def test_email_resent_after_a_crash_carries_the_same_message_id(
    messaging: Any, owner: Any, patient: Any, monkeypatch: Any, settings: Any
) -> None:
    smtp, _sms = messaging
    settings.DEFAULT_FROM_EMAIL = "Relais <resultats@relais.localhost>"
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    _kill_when_recording(monkeypatch, Channel.EMAIL)
    with pytest.raises(Killed):
        call_command("notify_worker", "--once")
    monkeypatch.undo()
    _leases_expire()
    call_command("notify_worker", "--once")
    message = Notification.objects.get(screening=screening, channel=Channel.EMAIL)
    assert message.status == NotificationStatus.SENT
    # SMTP has no client reference: the mail is delivered twice, under one Message-ID that mail clients collapse.
    ids = [m["message_id"] for m in smtp.store.messages]
    assert ids == [f"<{message.pk}@relais.localhost>"] * 2 and message.provider_id == ids[0]


def test_every_attempt_carries_the_same_id(messaging: Any, owner: Any, patient: Any) -> None:
    _smtp, sms = messaging
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    sms.mode = "http500"
    call_command("notify_worker", "--once")
    sms.mode = "ok"
    Notification.objects.update(next_attempt_at=timezone.now())
    call_command("notify_worker", "--once")
    message = Notification.objects.get(screening=screening, channel=Channel.SMS)
    assert message.status == NotificationStatus.SENT and message.attempts == 2
    assert [m["reference"] for m in sms.messages] == [str(message.pk)]


def test_a_message_that_kills_every_worker_ends_failed_not_in_a_loop(owner: Any, patient: Any, settings: Any) -> None:
    settings.RELAIS_NOTIFY = {**settings.RELAIS_NOTIFY, "max_attempts": 3}
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    for _round in range(3):
        for notification in services.notify_claim(owner="doomed"):
            assert services.notify_touch(owner="doomed", notification=notification)  # handed off, then the worker died
        _leases_expire()
    assert services.notify_claim(owner="next") == []
    statuses = set(Notification.objects.values_list("status", "attempts", "last_error"))
    assert statuses == {(NotificationStatus.FAILED, 3, services.IN_DOUBT)}


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback test server
        return response.status, json.loads(response.read())


def test_the_sandbox_gateway_honours_a_client_reference_even_after_a_restart(tmp_path: Path) -> None:
    gateway = SmsGateway(port=0, folder=tmp_path).start()
    try:
        first = _post(gateway.url, {"to": "+33612345678", "text": "hello", "reference": "ref-1"})
        again = _post(gateway.url, {"to": "+33612345678", "text": "hello", "reference": "ref-1"})
        other = _post(gateway.url, {"to": "+33612345678", "text": "hello", "reference": "ref-2"})
    finally:
        gateway.stop()
    assert first[0] == 202 and again == (200, {"id": first[1]["id"], "duplicate": True}) and other[1]["id"] != first[1]["id"]
    assert len(gateway.messages) == 2
    with (tmp_path / "sms.jsonl").open("a") as log:
        log.write('{"id": "cut sho')  # the last line of a gateway killed mid-write
    restarted = SmsGateway(port=0, folder=tmp_path).start()
    try:
        assert _post(restarted.url, {"to": "+33612345678", "text": "hello", "reference": "ref-1"}) == (200, again[1])
    finally:
        restarted.stop()
    assert restarted.messages == []
