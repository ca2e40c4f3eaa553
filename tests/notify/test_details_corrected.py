"""Issue 15, item 1, "the patient is told": after an identity correction the message, the result page and the PDF say
that the patient's details were corrected and the result is unchanged; a result correction still says the result was
corrected."""

from __future__ import annotations

from typing import Any

from django.utils import translation

from relais.intake.services import screening_correct, screening_record
from relais.notify.channels import email_text, sms_text
from relais.notify.models import Notification, NotificationKind
from relais.patients.correction import patient_correct_identity
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED
from tests.factories import screening_input
from tests.patients.test_correction import NEW_NAME, corrected


def _current(series_id: Any) -> Screening:
    return Screening.objects.get(series_id=series_id, is_current=True)


def test_an_identity_correction_tells_the_patient_their_details_changed(owner: Any, patient: Any) -> None:
    first = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient, **NEW_NAME))
    version = _current(first.series_id)
    assert version.version == 2 and version.corrects_details_only
    messages = list(Notification.objects.filter(screening=version))
    assert messages and {n.kind for n in messages} == {NotificationKind.DETAILS_CORRECTED}
    email = next(n for n in messages if n.channel == "email")
    text = email_text(email)
    assert "corrected your details" in text and "the result is unchanged" in text
    assert "a corrigé vos informations" in text  # the French half first
    assert "corrected the result" not in text
    assert "corrected your details" in sms_text(next(n for n in messages if n.channel == "sms"))


def test_a_result_correction_still_says_the_result_was_corrected(owner: Any, patient: Any) -> None:
    first = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    version = screening_correct(actor=owner, screening_id=first.pk, reason="misread", results={"sars-cov-2": RESULT_DETECTED})
    assert not version.corrects_details_only
    kinds = set(Notification.objects.filter(screening=version).values_list("kind", flat=True))
    assert kinds == {NotificationKind.CORRECTED}
    with translation.override("en"):
        assert "corrected the result" in email_text(Notification.objects.filter(screening=version, channel="email").get())


def test_the_result_page_and_the_pdf_say_details_not_result(owner: Any, patient: Any, as_user: Any, monkeypatch: Any) -> None:
    from reportlab.pdfgen import canvas

    drawn: list[str] = []
    draw_string = canvas.Canvas.drawString
    monkeypatch.setattr(
        canvas.Canvas, "drawString", lambda self, x, y, text, *a, **k: drawn.append(text) or draw_string(self, x, y, text, *a, **k)
    )
    first = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    patient_correct_identity(actor=owner, patient_id=patient.pk, identity=corrected(patient, **NEW_NAME))
    version = _current(first.series_id)
    web = as_user(owner)
    web.cookies["django_language"] = "en"
    assert web.get(f"/screenings/{version.pk}/document.pdf").status_code == 200
    text = "\n".join(drawn)
    assert "the patient's details were corrected" in text and "the result was corrected" not in text
