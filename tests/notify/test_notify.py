"""Patient messages over a real SMTP server and the loopback SMS gateway; the result page behind the date of birth."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.intake.services import screening_correct, screening_record
from relais.notify import services
from relais.notify.models import Notification, NotificationKind, NotificationStatus
from relais.patients.services import patient_register
from relais.screenings.vocab import RESULT_DETECTED
from tests.factories import identity, screening_input
from tests.notify.helpers import audited, link_in, open_link, send_messages, unlock

pytestmark = pytest.mark.django_db
HEALTH_WORDS = ["positi", "négati", "negati", "detect", "détect", "covid", "sars", "DURAND", "Camille", "1994", "12/03"]


def test_result_is_sent_by_email_and_sms_with_a_link_and_no_health_data(messaging: Any, owner: Any, patient: Any) -> None:
    smtp, sms = messaging
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": RESULT_DETECTED}))
    queued = Notification.objects.filter(screening=screening)
    assert sorted(queued.values_list("channel", flat=True)) == ["email", "sms"]
    send_messages()
    assert set(queued.values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert set(queued.values_list("link_url", flat=True)) == {""}  # the link is forgotten once sent: only its hash remains
    [mail] = smtp.store.messages
    [text] = sms.messages
    assert mail["to"] == ["camille.durand@example.org"] and text["to"] == "+33612345678"
    for body in (mail["subject"] + mail["text"], text["text"]):
        lowered = body.lower()
        assert not [w for w in HEALTH_WORDS if w.lower() in lowered], body
        assert "Pharmacie du Test" in body
    assert link_in(mail["text"]) == link_in(text["text"])
    assert AuditEvent.objects.filter(action="notification.send").exists()
    assert audited("notification.queue", screening.pk)


def test_no_contact_means_no_message(messaging: Any, owner: Any) -> None:
    patient = patient_register(actor=owner, identity=identity(phone="", email="", nir="", last_name="SANS"))
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    assert not Notification.objects.filter(screening=screening).exists()


def test_sms_gateway_failures_are_retried_with_backoff_or_shown_as_failed(messaging: Any, owner: Any, patient: Any) -> None:
    _smtp, sms = messaging
    sms.mode = "http500"
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    text = Notification.objects.get(screening=screening, channel="sms")
    assert text.status == NotificationStatus.PENDING and text.attempts == 1 and "500" in text.last_error
    assert text.next_attempt_at > timezone.now() and text.link_url  # kept until sent
    sms.mode = "reject"
    Notification.objects.filter(pk=text.pk).update(next_attempt_at=timezone.now())
    send_messages()
    text.refresh_from_db()
    assert text.status == NotificationStatus.FAILED and "400" in text.last_error and not text.link_url
    sms.mode = "ok"
    Notification.objects.filter(pk=text.pk).update(next_attempt_at=timezone.now())
    send_messages()
    assert sms.messages == []  # a failed message stays failed; the pharmacist sends a new link


def test_sms_rate_limit_honours_retry_after(messaging: Any, owner: Any, patient: Any) -> None:
    messaging[1].mode = "http429"
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    text = Notification.objects.get(screening=screening, channel="sms")
    assert text.status == NotificationStatus.PENDING and "429" in text.last_error


def test_refused_email_address_fails_visibly_and_unreachable_server_is_retried(messaging: Any, owner: Any, settings: Any) -> None:
    patient = patient_register(actor=owner, identity=identity(email="nobody@example.invalid", phone="", nir="", last_name="REFUS"))
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    mail = Notification.objects.get(screening=screening)
    assert mail.status == NotificationStatus.FAILED and "550" in mail.last_error
    assert "example.invalid" not in mail.last_error
    settings.EMAIL_PORT = 1  # nothing listens there
    other = patient_register(actor=owner, identity=identity(email="a@example.org", phone="", nir="", last_name="PANNE"))
    screening = screening_record(actor=owner, patient_id=other.pk, data=screening_input())
    send_messages()
    mail = Notification.objects.get(screening=screening)
    assert mail.status == NotificationStatus.PENDING and mail.attempts == 1 and "unreachable" in mail.last_error


def test_a_killed_worker_loses_nothing(messaging: Any, owner: Any, patient: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    claimed = services.notify_claim(owner="killed-worker")
    assert len(claimed) == 2
    send_messages()  # the leases are still held: nothing sent twice
    assert messaging[0].store.messages == []
    Notification.objects.update(lease_until=timezone.now() - timedelta(seconds=1))
    send_messages()
    assert len(messaging[0].store.messages) == 1 and len(messaging[1].messages) == 1
    assert set(Notification.objects.filter(screening=screening).values_list("status", flat=True)) == {NotificationStatus.SENT}


def test_a_late_lease_holder_cannot_overwrite(owner: Any, patient: Any) -> None:
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    [first, _second] = services.notify_claim(owner="a")
    Notification.objects.update(lease_owner="b")
    assert services.notify_record(owner="a", outcomes={first: services.SendOutcome.sent()}) == 0


def test_correction_tells_the_patient_and_the_old_link_is_replaced(messaging: Any, owner: Any, patient: Any) -> None:
    smtp, _ = messaging
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    old_link = link_in(smtp.store.messages[0]["text"])
    correction = screening_correct(actor=owner, screening_id=screening.pk, reason="inverted", results={"sars-cov-2": RESULT_DETECTED})
    assert Notification.objects.filter(screening=correction, kind=NotificationKind.CORRECTED).count() == 2
    send_messages()
    mail = smtp.store.messages[-1]["text"]
    assert "corrigé" in mail and "corrected" in mail
    assert Client().get(old_link).status_code == 410
    client = open_link(link_in(mail))
    unlock(client)
    assert "guidance positive" in client.get("/r/").content.decode()


def test_removal_tells_the_patient_the_result_was_withdrawn(messaging: Any, owner: Any, patient: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    screening_correct(actor=owner, screening_id=screening.pk, reason="wrong patient", remove=True)
    send_messages()
    client = open_link(link_in(messaging[0].store.messages[-1]["text"]))
    unlock(client)
    html = client.get("/r/").content.decode()
    assert "removed" in html and 'data-testid="result"' not in html


def test_pharmacist_sees_message_status_and_corrects_the_address_then_resends(messaging: Any, owner: Any, as_user: Any) -> None:
    patient = patient_register(actor=owner, identity=identity(email="typo@example.invalid", phone="", nir="", last_name="TYPO"))
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    web = as_user(owner)
    page = web.get(f"/screenings/{screening.pk}/").content.decode()
    assert 'data-testid="notification"' in page and "status failed" in page and "t•••@example.invalid" in page
    contact = web.get(f"/patients/{patient.pk}/contact/?screening={screening.pk}")
    assert contact.status_code == 200
    response = web.post(f"/patients/{patient.pk}/contact/?screening={screening.pk}", {"phone": "", "email": "fixed@example.org"})
    assert response.status_code == 302 and response["Location"] == f"/screenings/{screening.pk}/"
    send_messages()
    assert messaging[0].store.messages[-1]["to"] == ["fixed@example.org"]


def test_tenancy_of_resend_and_printed_document(owner: Any, colleague: Any, stranger: Any, screening: Any, as_user: Any) -> None:
    assert as_user(stranger).post(f"/screenings/{screening.pk}/resend/").status_code == 404
    assert as_user(stranger).get(f"/screenings/{screening.pk}/document.pdf").status_code == 404
    assert as_user(colleague).post(f"/screenings/{screening.pk}/resend/").status_code == 302
    document = as_user(colleague).get(f"/screenings/{screening.pk}/document.pdf")
    assert document.status_code == 200 and document.content.startswith(b"%PDF")
    assert AuditEvent.objects.filter(action="screening.pdf", actor_id=colleague.pk).exists()
    assert Client().post(f"/screenings/{screening.pk}/resend/").status_code == 302  # to the login page
    assert as_user(owner).get(f"/screenings/{screening.pk}/resend/").status_code == 405  # GET changes nothing


def test_operator_sees_message_queue_figures_without_addresses(messaging: Any, owner: Any, operator: Any, as_user: Any) -> None:
    patient = patient_register(actor=owner, identity=identity(email="gone@example.invalid", phone="", nir="", last_name="OPS"))
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    page = as_user(operator).get("/operator/transfer/").content.decode()
    assert 'data-testid="messages-waiting"' in page and "550" in page and "example.invalid" not in page
    out = io.StringIO()
    call_command("notify_stats", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["failed_last_day"] == 1 and "example.invalid" not in out.getvalue()


class _OddGateway:
    """An SMS operator whose answers are unusual but legal: to check the worker never resends or crashes on them."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.hits = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gateway.hits += 1
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/messages"


def _sms_only(owner: Any, gateway: _OddGateway, settings: Any) -> Notification:
    settings.RELAIS_SMS = {**settings.RELAIS_SMS, "url": gateway.url, "timeout": 5}
    patient = patient_register(actor=owner, identity=identity(email="", nir="", last_name="GATEWAY"))
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    return Notification.objects.get(screening=screening)


@pytest.mark.parametrize("body", [b"OK", b'["queued"]', b""])
def test_any_2xx_from_the_gateway_means_sent_once(owner: Any, settings: Any, body: bytes) -> None:
    gateway = _OddGateway(202, body)
    message = _sms_only(owner, gateway, settings)
    for _round in range(3):
        Notification.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        send_messages()
    message.refresh_from_db()
    assert gateway.hits == 1 and message.status == NotificationStatus.SENT


def test_huge_retry_after_is_capped_and_the_attempt_counts(owner: Any, settings: Any) -> None:
    message = _sms_only(owner, _OddGateway(429, b'{"error": "slow down"}', {"Retry-After": "1e12"}), settings)
    send_messages()
    message.refresh_from_db()
    assert message.attempts == 1 and message.next_attempt_at < timezone.now() + timedelta(hours=2)


def test_a_number_quoted_back_by_the_gateway_is_not_stored(owner: Any, settings: Any) -> None:
    message = _sms_only(owner, _OddGateway(400, b'{"error": "destination +33 6 12 34 56 78 is not a mobile number"}'), settings)
    send_messages()
    message.refresh_from_db()
    assert message.status == NotificationStatus.FAILED and "56 78" not in message.last_error and "mobile" in message.last_error


def test_a_message_cancelled_or_reclaimed_after_the_claim_is_not_sent(messaging: Any, owner: Any, patient: Any) -> None:
    from relais.notify.channels import send_batch

    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    claimed = services.notify_claim(owner="slow")
    screening_correct(actor=owner, screening_id=screening.pk, reason="typo", results={"sars-cov-2": RESULT_DETECTED})
    send_batch(claimed, before_send=lambda n: services.notify_touch(owner="slow", notification=n))
    assert messaging[0].store.messages == [] and messaging[1].messages == []  # the stale link never leaves
    fresh = services.notify_claim(owner="a")
    Notification.objects.filter(pk__in=[n.pk for n in fresh]).update(lease_owner="b")  # another worker took them over
    send_batch(fresh, before_send=lambda n: services.notify_touch(owner="a", notification=n))
    assert messaging[0].store.messages == [] and messaging[1].messages == []


def test_staff_reading_message_addresses_isaudited(messaging: Any, owner: Any, screening: Any, as_user: Any) -> None:
    assert as_user(owner).get(f"/screenings/{screening.pk}/").status_code == 200
    assert AuditEvent.objects.filter(action="notification.list", actor_id=owner.pk).exists()
