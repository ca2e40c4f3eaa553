"""The patient's side of a result link: open it, prove the date of birth, read the test (every step audited)."""

from __future__ import annotations

import hmac
import uuid
from datetime import date, datetime
from typing import cast

from django.db import transaction
from django.utils import timezone

from relais.audit.services import audit_record
from relais.notify.models import ResultLink
from relais.notify.services import token_hash
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED, RESULT_INVALID

MAX_DOB_ATTEMPTS = 10


def result_guidance(codes: set[str]) -> str:
    """Which advice a patient gets: any positive wins, then invalid, else negative."""
    return "positive" if RESULT_DETECTED in codes else "invalid" if RESULT_INVALID in codes else "negative"


class LinkUnusable(Exception):
    """The link is unknown, expired, replaced by a newer one or locked; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _usable(link: ResultLink | None, now: datetime) -> ResultLink:
    if link is None:
        raise LinkUnusable("unknown")
    if link.locked_at is not None:
        raise LinkUnusable("locked")
    if link.replaced_at is not None:
        raise LinkUnusable("replaced")
    if link.expires_at <= now:
        raise LinkUnusable("expired")
    return link


def link_open(*, token: str, now: datetime | None = None) -> ResultLink:
    """The link behind a token, if still usable. Opening a real link is audited, usable or not (nothing personal is shown)."""
    refused: LinkUnusable | None = None
    with transaction.atomic():
        found = ResultLink.objects.filter(token_hash=token_hash(token)).first()
        try:
            link = _usable(found, now or timezone.now())
        except LinkUnusable as exc:
            refused = exc
        if found is not None:
            action = "result_link.open" if refused is None else f"result_link.open_{refused.reason}"
            audit_record(
                actor=None, action=action, object_type="result_link", object_ids=[found.pk, found.patient_id], pharmacy_id=found.pharmacy_id
            )
    if refused is not None:
        raise refused
    return link


def link_get(*, link_id: uuid.UUID | str, now: datetime | None = None) -> ResultLink:
    return _usable(ResultLink.objects.filter(pk=link_id).first(), now or timezone.now())


def link_check_birth_date(*, link_id: uuid.UUID | str, date_of_birth: date, now: datetime | None = None) -> bool:
    """True when the date matches. Each wrong answer counts; the tenth locks the link. Audited either way."""
    now = now or timezone.now()
    with transaction.atomic():
        link = _usable(ResultLink.objects.select_for_update().select_related("patient").filter(pk=link_id).first(), now)
        expected = cast(date, link.patient.date_of_birth)  # EncryptedDateField gives a date
        if hmac.compare_digest(expected.isoformat(), date_of_birth.isoformat()):
            link.failed_attempts = 0
            link.last_opened_at = now
            link.save(update_fields=["failed_attempts", "last_opened_at"])
            audit_record(
                actor=None,
                action="result_link.unlock",
                object_type="result_link",
                object_ids=[link.pk, link.patient_id],
                pharmacy_id=link.pharmacy_id,
            )
            return True
        link.failed_attempts += 1
        locked = link.failed_attempts >= MAX_DOB_ATTEMPTS
        if locked:
            link.locked_at = now
        link.save(update_fields=["failed_attempts", "locked_at"])
        audit_record(
            actor=None,
            action="result_link.locked" if locked else "result_link.wrong_birth_date",
            object_type="result_link",
            object_ids=[link.pk, link.patient_id],
            pharmacy_id=link.pharmacy_id,
        )
    return False


def link_result(*, link_id: uuid.UUID | str, purpose: str, now: datetime | None = None) -> Screening:
    """The test's latest version, read by the patient: one audit event per view or download."""
    now = now or timezone.now()
    with transaction.atomic():
        link = link_get(link_id=link_id, now=now)
        screening = (
            Screening.objects.select_related("patient", "pharmacy", "device")
            .prefetch_related("results")
            .get(series_id=link.series_id, is_current=True, pharmacy_id=link.pharmacy_id)
        )
        audit_record(
            actor=None,
            action=f"result.patient_{purpose}",
            object_type="screening",
            object_ids=[screening.pk, screening.patient_id, link.pk],
            pharmacy_id=link.pharmacy_id,
        )
    return screening
