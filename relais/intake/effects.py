"""What a recorded, corrected or removed screening sets off, in one place, inside the transaction that writes it.

The outbox row (transmission to the national platform), the certificate and the patient messages commit with the
screening or not at all. Webhooks are not attached here: they follow the national platform's answer (transfer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from relais.accounts.models import User
from relais.audit.services import AuditBuffer
from relais.certificates.models import Certificate, CertificateRefusal
from relais.certificates.services import certificate_issue, certificate_prepare, certificate_revoke_series
from relais.core import bulk
from relais.notify.models import Notification, ResultLink
from relais.notify.services import notifications_prepare, notify_for_screening
from relais.screenings.models import Screening
from relais.transfer.models import OutboxMessage
from relais.transfer.services import outbox_enqueue


@dataclass
class RecordedEffects:
    """A new test's effects, built in memory: ``recorded_inserts`` writes those of a whole batch together."""

    outbox: OutboxMessage
    certificate: Certificate | CertificateRefusal | None = None
    link: ResultLink | None = None
    notifications: list[Notification] = field(default_factory=list)


def screening_recorded(*, actor: User, screening: Screening, results: dict[str, str], now: datetime, audit: AuditBuffer) -> RecordedEffects:
    """The effects of a test recorded in this transaction (so it has no earlier message, link or certificate)."""
    # No destination nor format yet: the worker that sends it decides, from the destination in force then.
    outbox = bulk.new(
        OutboxMessage,
        screening=screening,
        series_id=screening.series_id,
        version=screening.version,
        pharmacy_id=screening.pharmacy_id,
        next_attempt_at=timezone.now(),
    )
    effects = RecordedEffects(outbox=outbox, certificate=certificate_prepare(screening=screening, results=results, now=now))
    prepared = notifications_prepare(actor=actor, screening=screening, now=now)
    if prepared is not None:
        effects.link, effects.notifications = prepared
        audit.add(
            actor=actor,
            action="notification.queue",
            object_type="screening",
            object_ids=[screening.pk, screening.patient_id],
            pharmacy_id=screening.pharmacy_id,
        )
    return effects


def recorded_inserts(effects: Sequence[RecordedEffects]) -> list[bulk.PreparedInsert]:
    """The INSERTs of tests' effects (run after the tests' own rows): one prepared statement per table."""
    return [
        bulk.PreparedInsert(OutboxMessage, [e.outbox for e in effects]),
        bulk.PreparedInsert(Certificate, [e.certificate for e in effects if isinstance(e.certificate, Certificate)]),
        bulk.PreparedInsert(CertificateRefusal, [e.certificate for e in effects if isinstance(e.certificate, CertificateRefusal)]),
        bulk.PreparedInsert(ResultLink, [e.link for e in effects if e.link is not None]),
        bulk.PreparedInsert(Notification, [n for e in effects for n in e.notifications]),
    ]


def screening_corrected(*, actor: User, original: Screening, correction: Screening, results: dict[str, str], removed: bool) -> None:
    """A corrected or removed version: sent as such, earlier certificates revoked, patient told again."""
    outbox_enqueue(screening=correction)
    # The earlier certificate says something no longer true: revoke it, then issue one for the corrected result if allowed.
    certificate_revoke_series(series_id=original.series_id, reason="removed" if removed else "corrected")
    certificate_issue(screening=correction, results=results)
    notify_for_screening(actor=actor, screening=correction)
