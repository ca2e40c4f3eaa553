"""The test queue: swab now, result later (issue 15, item 4).

``queue_start`` keeps a swab without its result as a PendingTest (nothing is sent anywhere); ``queue_result`` records
it through relais.intake's one road (screening_intake: the screening, its outbox row, certificate, patient messages and
audit) in the transaction that marks the pending row done, so a refused or duplicate result leaves it pending;
``queue_cancel`` closes it with a reason. Every read and write of a row is audited in its transaction."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core.tenancy import for_actor, get_for_actor
from relais.intake.services import IntakeOutcome, screening_intake
from relais.patients.models import Patient
from relais.screenings.inputs import MAX_AGE, ScreeningInput
from relais.screenings.services import screening_check
from relais.testqueue.models import PendingTest

CANCEL_REASON_MAX = 500


def overdue_minutes() -> int:
    """Minutes after the reading time from which a test still without result is flagged (RELAIS_QUEUE_OVERDUE_MINUTES)."""
    return int(getattr(settings, "RELAIS_QUEUE_OVERDUE_MINUTES", 30))


def _require(actor: User) -> None:
    if not actor.sees_patients:
        raise PermissionDenied


def _open(actor: User) -> QuerySet[PendingTest]:
    return for_actor(PendingTest, actor).filter(done_at__isnull=True, cancelled_at__isnull=True)


def _without_results(data: ScreeningInput) -> ScreeningInput:
    return replace(data, results={})


def queue_start(*, actor: User, patient_id: uuid.UUID | str, data: ScreeningInput, now: datetime | None = None) -> PendingTest:
    """Put a swab in the queue: every check of a recorded test but the results (ValidationError naming the fields).

    The same swab twice (same patient, device and sampling time, still in the queue: a double click) answers the row
    already there."""
    _require(actor)
    now = now or timezone.now()
    data = _without_results(data)
    errors: dict[str, list[str]] = {}
    try:
        screening_check(data, now=now)
    except ValidationError as exc:
        errors = {k: v for k, v in exc.message_dict.items() if not k.startswith("result")}
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        patient = get_for_actor(Patient.objects.filter(merged_into__isnull=True), actor, patient_id)
        device_id = str(data.device_id).strip()
        same = _open(actor).filter(patient=patient, device_id=device_id, sampled_at=data.sampled_at).first()
        if same is not None:
            return same
        row = PendingTest.objects.create(
            pharmacy_id=actor.tenant_id,
            patient=patient,
            device_id=device_id,
            **data.recorded_fields(),
            information_notice_given=data.information_notice_given,
            started_by=actor,
            started_at=now,
        )
        audit_record(actor=actor, action="queue.start", object_type="pending_test", object_ids=[row.pk, patient.pk])
    return row


def pending_input(row: PendingTest, results: dict[str, str]) -> ScreeningInput:
    """What the pending row and the read results record."""
    return ScreeningInput(
        device_id=row.device_id,
        specimen_type=row.specimen_type,
        sampled_at=row.sampled_at,
        results=dict(results),
        information_notice_given=row.information_notice_given,
        kit_lot=row.kit_lot,
        kit_expiry=row.kit_expiry,
        symptoms=row.symptoms,
        symptom_onset=row.symptom_onset,
    )


def queue_result(*, actor: User, pending_id: uuid.UUID | str, results: dict[str, str], now: datetime | None = None) -> IntakeOutcome:
    """Record the test with its results and mark the pending row done, in one transaction.

    Raises the intake's ValidationError (naming the field) or, for a test already recorded (same patient, device and
    sampling time), a ValidationError saying so: either way nothing is written and the row stays in the queue.
    PendingTest.DoesNotExist for another pharmacy's row or one no longer in the queue."""
    _require(actor)
    now = now or timezone.now()
    with transaction.atomic():
        row = _open(actor).select_for_update().get(pk=pending_id)
        outcome = screening_intake(actor=actor, data=pending_input(row, results), patient_id=row.patient_id, now=now)
        if outcome.is_duplicate:
            raise ValidationError({"__all__": [outcome.note]})
        row.screening = outcome.screening
        row.done_at = now
        row.closed_by = actor
        row.save(update_fields=["screening", "done_at", "closed_by"])
        audit_record(
            actor=actor,
            action="queue.result",
            object_type="pending_test",
            object_ids=[row.pk, outcome.screening.pk, row.patient_id],
        )
    return outcome


def queue_cancel(*, actor: User, pending_id: uuid.UUID | str, reason: str, now: datetime | None = None) -> PendingTest:
    """Take a test out of the queue without a result (invalid test, patient gone...): nothing is sent; the reason is kept
    encrypted, never in the audit log."""
    _require(actor)
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": [_("Say why the test is cancelled.")]})
    if len(reason) > CANCEL_REASON_MAX:
        raise ValidationError({"reason": [_("The reason is too long (500 characters at most).")]})
    with transaction.atomic():
        row = _open(actor).select_for_update().get(pk=pending_id)
        row.cancelled_at = now or timezone.now()
        row.cancel_reason = reason
        row.closed_by = actor
        row.save(update_fields=["cancelled_at", "cancel_reason", "closed_by"])
        audit_record(actor=actor, action="queue.cancel", object_type="pending_test", object_ids=[row.pk, row.patient_id])
    return row


# --- reads ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    test: PendingTest
    ready_at: datetime
    overdue_at: datetime
    now: datetime

    @property
    def seconds_left(self) -> int:
        return max(0, int((self.ready_at - self.now).total_seconds()))

    @property
    def ready(self) -> bool:
        return self.now >= self.ready_at

    @property
    def overdue(self) -> bool:
        return self.now >= self.overdue_at

    @property
    def minutes_without_result(self) -> int:
        """Minutes since the reading time (what the overdue flag says)."""
        return max(0, int((self.now - self.ready_at).total_seconds() // 60))

    @property
    def countdown(self) -> str:
        left = self.seconds_left
        return f"{left // 60}:{left % 60:02d}"


def _entry(row: PendingTest, now: datetime, limit: int) -> QueueEntry:
    ready_at = row.sampled_at + timedelta(minutes=row.device.reading_minutes)
    return QueueEntry(test=row, ready_at=ready_at, overdue_at=ready_at + timedelta(minutes=limit), now=now)


def queue_list(*, actor: User, now: datetime | None = None) -> list[QueueEntry]:
    """The pharmacy's tests waiting for their result, the first to read first (audited: the page shows names)."""
    _require(actor)
    now = now or timezone.now()
    limit = overdue_minutes()
    with transaction.atomic():
        rows = list(_open(actor).select_related("patient", "device"))
        entries = sorted((_entry(r, now, limit) for r in rows), key=lambda e: (e.ready_at, e.test.started_at, str(e.test.pk)))
        ids: list[Any] = []
        for e in entries:
            ids += [e.test.pk, e.test.patient_id]
        audit_record(actor=actor, action="queue.list", object_type="pending_test", object_ids=ids)
    return entries


def queue_get(*, actor: User, pending_id: uuid.UUID | str, now: datetime | None = None) -> QueueEntry:
    """One test waiting for its result (audited); PendingTest.DoesNotExist for another pharmacy's or a closed one."""
    _require(actor)
    with transaction.atomic():
        row = _open(actor).select_related("patient", "device").get(pk=pending_id)
        audit_record(actor=actor, action="queue.view", object_type="pending_test", object_ids=[row.pk, row.patient_id])
    return _entry(row, now or timezone.now(), overdue_minutes())


def queue_closed(*, actor: User, pending_id: uuid.UUID | str) -> bool:
    """Whether this pharmacy's row left the queue (result entered or cancelled, at this desk or another): no names read."""
    return for_actor(PendingTest, actor).filter(pk=pending_id).exclude(done_at__isnull=True, cancelled_at__isnull=True).exists()


def queue_version(*, actor: User) -> str:
    """A fingerprint of the open rows (ids only, no names): the page's refresh fetches the list again only on a change."""
    ids = sorted(str(pk) for pk in _open(actor).values_list("pk", flat=True))
    return hashlib.sha256("|".join(ids).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class QueueCounts:
    in_progress: int
    overdue: int


def queue_counts(*, actor: User, now: datetime | None = None) -> QueueCounts:
    """How many tests wait for their result, and how many of them are overdue: counts only, nothing audited."""
    now = now or timezone.now()
    limit = overdue_minutes()
    rows = (
        for_actor(PendingTest, actor, patient_data=False)
        .filter(done_at__isnull=True, cancelled_at__isnull=True)
        .values_list("sampled_at", "device__reading_minutes")
    )
    times = list(rows)
    overdue = sum(1 for sampled_at, minutes in times if now >= sampled_at + timedelta(minutes=minutes + limit))
    return QueueCounts(in_progress=len(times), overdue=overdue)


# --- the scheduled purge -------------------------------------------------------------------------------------------


def purge(*, now: datetime | None = None) -> dict[str, Any]:
    """Delete cancelled and abandoned rows once their result could no longer be entered (sampled more than MAX_AGE ago,
    the limit every road applies): they serve nothing after that. Done rows go with the test they became."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = list(PendingTest.objects.filter(done_at__isnull=True, sampled_at__lt=now - MAX_AGE).values_list("pk", flat=True)[:10_000])
        deleted = PendingTest.objects.filter(pk__in=stale).delete()[0] if stale else 0
        if deleted:
            audit_record(actor=None, action="queue.purge", object_type="pending_test", object_ids=stale, detail={"deleted": deleted})
    return {"deleted": deleted}


def purge_job(now: datetime) -> dict[str, Any]:
    return purge(now=now)
