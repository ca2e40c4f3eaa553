"""Each language half of a patient message shows dates in its own language (issue 15, item 8): the English half of
the email used to carry a French date. The SMS carries no date; checked too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from relais.intake.services import screening_record
from relais.notify.models import ResultLink
from tests.factories import screening_input
from tests.notify.helpers import send_messages

FRENCH_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre")
ENGLISH_MONTHS = ("Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.", "Dec.")


def test_email_dates_are_in_each_half_s_language(messaging: Any, owner: Any, patient: Any) -> None:
    smtp, sms = messaging
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    expires = timezone.make_aware(datetime(2026, 12, 8, 18, 0))
    ResultLink.objects.filter(series_id=screening.series_id).update(expires_at=expires)
    send_messages()
    [mail] = smtp.store.messages
    french, _sep, english = mail["text"].partition("the result of your test is available")
    assert "valable jusqu’au 8 décembre 2026" in french or "8 décembre 2026" in french, french
    assert "Dec. 8, 2026" in english, english
    assert not any(month in english for month in FRENCH_MONTHS), english
    assert not any(month in french for month in ENGLISH_MONTHS), french
    [text] = sms.messages
    assert not any(month in text["text"] for month in (*FRENCH_MONTHS, *ENGLISH_MONTHS))
