"""The today list's message badge explains a failed patient message in plain words, not the provider's raw text."""

from __future__ import annotations

from typing import Any

from relais.intake.services import screening_record
from relais.notify.models import Notification, NotificationStatus
from tests.factories import screening_input


def test_a_failed_message_badge_says_why_in_plain_words(owner: Any, patient: Any, as_user: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    Notification.objects.filter(screening=screening, channel="sms").update(
        status=NotificationStatus.FAILED, last_error="SMS gateway answered 400: invalid destination"
    )
    page = as_user(owner).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "wrong number" in page
    assert "SMS gateway answered 400" not in page
