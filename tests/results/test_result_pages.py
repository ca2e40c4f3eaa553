"""The result page behind the date of birth, and the result PDF for the patient and the counter."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.intake.services import screening_correct, screening_record
from relais.notify.models import ResultLink
from relais.results import services
from relais.screenings.vocab import RESULT_DETECTED, RESULT_INVALID
from tests.factories import screening_input
from tests.notify.helpers import audited, link_in, open_link, send_messages, unlock

pytestmark = pytest.mark.django_db


def test_patient_opens_the_link_proves_the_birth_date_and_reads_the_result(messaging: Any, owner: Any, patient: Any) -> None:
    smtp, _ = messaging
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": RESULT_DETECTED}))
    send_messages()
    link = link_in(smtp.store.messages[0]["text"])
    client = open_link(link)
    form = client.get("/r/")
    assert form.status_code == 200 and b"date_of_birth" in form.content
    assert "no-store" in form["Cache-Control"] and form["Referrer-Policy"] == "same-origin"
    assert b"DURAND" not in form.content  # nothing personal before the date of birth
    wrong = unlock(client, "13/03/1994")
    assert wrong.status_code == 400 and b"9" in wrong.content
    assert AuditEvent.objects.filter(action="result_link.wrong_birth_date").count() == 1
    assert unlock(client).status_code == 302
    page = client.get("/r/")
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert "Pharmacie du Test" in html and 'data-testid="result"' in html
    assert "guidance positive" in html and "<svg" in html  # guidance for a positive result, and the certificate's QR code
    assert audited("result.patient_view", screening.pk)
    pdf = client.get("/r/document.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and "no-store" in pdf["Cache-Control"]
    assert AuditEvent.objects.filter(action="result.patient_pdf").exists()
    # The token never appears in a later address, a page or a redirect.
    token = link.rsplit("/", 1)[1]
    assert token not in html and not ResultLink.objects.filter(token_hash=token).exists()


def test_pages_in_english_and_french(messaging: Any, owner: Any, patient: Any) -> None:
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    link = link_in(messaging[0].store.messages[0]["text"])
    client = open_link(link)
    assert "Votre date de naissance" in client.get("/r/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    client.cookies["django_language"] = "en"
    assert "Your date of birth" in client.get("/r/").content.decode()


@pytest.mark.parametrize(("code", "guidance"), [(RESULT_INVALID, "invalid"), ("260415000", "negative")])
def test_guidance_follows_the_result(messaging: Any, owner: Any, patient: Any, code: str, guidance: str) -> None:
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": code}))
    send_messages()
    client = open_link(link_in(messaging[0].store.messages[0]["text"]))
    unlock(client)
    assert f"guidance {guidance}" in client.get("/r/").content.decode()


def test_ten_wrong_dates_lock_the_link_until_the_pharmacist_sends_a_new_one(messaging: Any, owner: Any, patient: Any, as_user: Any) -> None:
    smtp, _ = messaging
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    old_link = link_in(smtp.store.messages[0]["text"])
    client = open_link(old_link)
    for _attempt in range(9):
        assert unlock(client, "01/01/2000").status_code == 400
    locked = unlock(client, "01/01/2000")
    assert locked.status_code == 410 and b'data-reason="locked"' in locked.content
    assert unlock(client).status_code in (404, 410)  # even the right date no longer opens it
    assert Client().get(old_link).status_code == 410
    assert AuditEvent.objects.filter(action="result_link.locked").count() == 1
    response = as_user(owner).post(f"/screenings/{screening.pk}/resend/")
    assert response.status_code == 302
    send_messages()
    new_link = link_in(smtp.store.messages[-1]["text"])
    assert new_link != old_link
    fresh = open_link(new_link)
    assert unlock(fresh).status_code == 302 and fresh.get("/r/").status_code == 200
    assert AuditEvent.objects.filter(action="notification.resend", actor_id=owner.pk).exists()


def test_links_expire_after_ten_days(messaging: Any, owner: Any, patient: Any) -> None:
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    link = link_in(messaging[0].store.messages[0]["text"])
    ResultLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().get(link)
    assert response.status_code == 410 and b'data-reason="expired"' in response.content
    assert ResultLink.objects.get().expires_at - ResultLink.objects.get().created_at < timedelta(days=10, seconds=1)


def test_unknown_or_truncated_links_answer_404_without_detail() -> None:
    response = Client().get("/r/" + "A" * 43)
    assert response.status_code == 404 and b'data-reason="unknown"' in response.content
    assert Client().get("/r/").status_code == 404


def test_birth_date_is_checked_without_leaking_which_part_is_wrong(messaging: Any, owner: Any, patient: Any) -> None:
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    client = open_link(link_in(messaging[0].store.messages[0]["text"]))
    bad_format = unlock(client, "1994/31/31")
    assert bad_format.status_code == 400 and b"31/12/1980" in bad_format.content
    assert ResultLink.objects.get().failed_attempts == 0  # a typo in the format is not an attempt
    assert services.link_check_birth_date(link_id=ResultLink.objects.get().pk, date_of_birth=date(1994, 3, 12))


def test_result_link_tokens_never_reach_the_logs(caplog: Any) -> None:
    import logging

    from relais.core.gunicorn_logging import redact_path
    from relais.core.logging import RequestContextFilter

    token = "x" * 43
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s: %s", ("Gone", f"/r/{token}"), None)
    RequestContextFilter().filter(record)
    assert token not in record.getMessage() and "/r/[link]" in record.getMessage()
    assert redact_path(f"/r/{token}") == "/r/[link]"
    assert redact_path("/screenings/") == "/screenings/"


def test_pdf_holds_pharmacy_identity_test_result_and_qr(owner: Any, patient: Any, as_user: Any, monkeypatch: Any) -> None:
    from reportlab.pdfgen import canvas

    from relais.certificates.services import certificate_for_screening

    drawn: list[str] = []
    squares: list[float] = []
    draw_string, rect = canvas.Canvas.drawString, canvas.Canvas.rect
    monkeypatch.setattr(
        canvas.Canvas, "drawString", lambda self, x, y, text, *a, **k: drawn.append(text) or draw_string(self, x, y, text, *a, **k)
    )
    monkeypatch.setattr(canvas.Canvas, "rect", lambda self, x, y, w, h, *a, **k: squares.append(w) or rect(self, x, y, w, h, *a, **k))
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": RESULT_DETECTED}))
    data = as_user(owner).get(f"/screenings/{screening.pk}/document.pdf").content
    assert data.startswith(b"%PDF")
    certificate = certificate_for_screening(screening=screening)
    assert certificate is not None
    text = "\n".join(drawn)
    for expected in ("Pharmacie du Test", "DURAND-TESTEUR Camille", "12/03/1994", "1232", "Panbio", certificate.uvci):
        assert expected in text, expected
    assert "positi" in text.lower()
    assert len(squares) > 300  # the certificate's QR code, drawn as vector modules


def test_printing_an_older_version_says_it_is_outdated(owner: Any, patient: Any, as_user: Any, monkeypatch: Any) -> None:
    from reportlab.pdfgen import canvas

    drawn: list[str] = []
    draw_string = canvas.Canvas.drawString
    monkeypatch.setattr(
        canvas.Canvas, "drawString", lambda self, x, y, text, *a, **k: drawn.append(text) or draw_string(self, x, y, text, *a, **k)
    )
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    screening_correct(actor=owner, screening_id=screening.pk, reason="misread", results={"sars-cov-2": RESULT_DETECTED})
    web = as_user(owner)
    web.cookies["django_language"] = "en"
    assert f"/screenings/{screening.pk}/document.pdf" not in web.get(f"/screenings/{screening.pk}/").content.decode()
    assert web.get(f"/screenings/{screening.pk}/document.pdf").status_code == 200
    assert any("OUTDATED" in text for text in drawn)


def test_opening_a_locked_or_expired_link_isaudited(messaging: Any, owner: Any, patient: Any) -> None:
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    link = link_in(messaging[0].store.messages[0]["text"])
    ResultLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(link).status_code == 410
    assert AuditEvent.objects.filter(action="result_link.open_expired").count() == 1


def test_a_bad_link_fetched_by_another_site_does_not_end_the_open_result(messaging: Any, owner: Any, patient: Any) -> None:
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    send_messages()
    client = open_link(link_in(messaging[0].store.messages[0]["text"]))
    unlock(client)
    assert client.get("/r/" + "B" * 43).status_code == 404
    assert 'data-testid="result"' in client.get("/r/").content.decode()
