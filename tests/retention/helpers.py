"""Builders for the retention tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone

from relais.intake.services import screening_record
from relais.notify.models import Notification, NotificationStatus
from relais.patients.services import patient_register
from relais.transfer.models import OutboxMessage, TransferStatus
from tests.factories import identity, screening_input


def settle(now: datetime | None = None) -> None:
    """What the workers would have done: every message acknowledged, every notification sent."""
    now = now or timezone.now()
    OutboxMessage.objects.filter(status=TransferStatus.PENDING).update(
        status=TransferStatus.ACKNOWLEDGED, acknowledged_at=now, ack_text="AA accepted for DURAND"
    )
    Notification.objects.filter(status=NotificationStatus.PENDING).update(status=NotificationStatus.SENT, sent_at=now, link_url="")


def new_patient(actor: Any, n: int, **overrides: Any) -> Any:
    return patient_register(
        actor=actor,
        identity=identity(
            last_name=f"PATIENT-{n}", nir="", email=f"p{n}@example.org", date_of_birth=date(1990, 1, 1) + timedelta(days=n), **overrides
        ),
    )


def record_test(actor: Any, patient: Any, **overrides: Any) -> Any:
    return screening_record(actor=actor, patient_id=patient.pk, data=screening_input(**overrides))


def days(n: float) -> timedelta:
    return timedelta(days=n)
