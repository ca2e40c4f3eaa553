"""Accepting screenings from software and files: each item its own outcome, never the whole batch refused for one bad item.

A submission is the durable record of a batch or a CSV file. Items are recorded in chunks (one transaction per
chunk, the chunk's tests written as a set), each with its outcome row, so a killed process resumes where it stopped and an
item is never recorded twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core import bulk, queue
from relais.intake.services import (
    IntakeOutcome,
    IntakePlan,
    IntakeRequest,
    screenings_commit,
    screenings_intake,
    screenings_plan_ahead,
)
from relais.patients.services import PatientIdentity
from relais.screenings import csv_import
from relais.screenings.inputs import ScreeningInput
from relais.submissions.models import ItemStatus, Submission, SubmissionItem, SubmissionKind, SubmissionStatus

CHUNK = 1000  # items per transaction, recorded as a set: a whole API batch at once, a CSV file in steps it resumes from
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class ItemError:
    field: str
    message: str
    value: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "value": self.value}


def validation_errors(exc: ValidationError, *, prefix: str = "") -> list[ItemError]:
    """Service errors as (field, message); ``__all__`` becomes the prefix itself (or "item")."""
    out: list[ItemError] = []
    for name, messages in exc.message_dict.items():
        where = f"{prefix}{name}" if name != "__all__" else (prefix.rstrip(".") or "item")
        out.extend(ItemError(where, str(m)) for m in messages)
    return out


# --- Submissions -------------------------------------------------------------------------------------------------


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


class SubmissionBusy(Exception):
    """The same submission is being processed right now by another request or worker."""


@dataclass
class Prepared:
    """An item ready to record, or the errors that keep it out."""

    position: int
    data: ScreeningInput | None = None
    identity: PatientIdentity | None = None
    patient_id: uuid.UUID | None = None
    errors: list[ItemError] = field(default_factory=list)


def submission_open(
    *,
    actor: User,
    kind: str,
    idempotency_key: str = "",
    request_hash: str = "",
    file_name: str = "",
    content: str = "",
    total: int = 0,
    language: str = "",
) -> tuple[Submission, bool]:
    """Create the submission, or return the one made earlier with the same Idempotency-Key (created=False)."""
    if not actor.sees_patients:
        raise PermissionDenied
    if idempotency_key:
        existing = Submission.objects.filter(submitted_by=actor, idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.request_hash != request_hash or existing.kind != kind:
                raise IdempotencyConflict
            return existing, False
    submission = Submission(
        pharmacy_id=actor.tenant_id,
        submitted_by=actor,
        kind=kind,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        file_name=file_name,
        content=content,
        total=total,
        language=language or translation.get_language() or "fr",
    )
    try:
        with transaction.atomic():
            submission.save()
            audit_record(actor=actor, action=f"submission.{kind}", object_type="submission", object_ids=[submission.pk])
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent request with the same key won the race: answer with its submission.
        existing = Submission.objects.get(submitted_by=actor, idempotency_key=idempotency_key)
        if existing.request_hash != request_hash or existing.kind != kind:
            raise IdempotencyConflict from None
        return existing, False
    return submission, True


def _take_lease(submission: Submission, *, owner: str, now: datetime) -> bool:
    """Only one process works on a submission; a dead one's lease runs out and another resumes."""
    taken = (
        Submission.objects.filter(pk=submission.pk, status__in=[SubmissionStatus.QUEUED, SubmissionStatus.PROCESSING])
        .exclude(lease_until__gt=now, lease_owner__gt="")
        .exclude(lease_owner=owner)
        .update(status=SubmissionStatus.PROCESSING, lease_owner=owner, lease_until=now + LEASE)
    )
    if not taken:
        taken = Submission.objects.filter(pk=submission.pk, lease_owner=owner, status=SubmissionStatus.PROCESSING).update(
            lease_until=now + LEASE
        )
    if taken and submission.started_at is None:
        Submission.objects.filter(pk=submission.pk, started_at__isnull=True).update(started_at=now)
    return bool(taken)


def submission_process(
    *,
    submission: Submission,
    items: Iterable[Prepared],
    owner: str,
    progress: Callable[[int, int], None] | None = None,
) -> Submission:
    """Record every item (skipping those already recorded by an earlier, interrupted run) and close the submission."""
    actor = submission.submitted_by
    if not _take_lease(submission, owner=owner, now=timezone.now()):
        submission.refresh_from_db()
        if submission.status in (SubmissionStatus.DONE, SubmissionStatus.FAILED):
            return submission
        raise SubmissionBusy
    done = set(SubmissionItem.objects.filter(submission=submission).values_list("position", flat=True))
    pending = [item for item in items if item.position not in done]
    now = submission.created_at  # resumed work validates sampling times as of the upload, like the first run
    for start in range(0, len(pending), CHUNK):
        chunk = pending[start : start + CHUNK]
        counts = {ItemStatus.ACCEPTED: 0, ItemStatus.DUPLICATE: 0, ItemStatus.REJECTED: 0}
        # The CPU work (checks, matching, encryption, certificates) before the transaction: the write lock covers inserts.
        plan = screenings_plan_ahead(actor=actor, requests=_requests(chunk), now=now)
        # Its items' rows too, as they will be unless the plan must be made again under the lock.
        ahead = _item_rows(submission=submission, items=chunk, recorded=plan.outcomes) if plan is not None else None
        ahead_insert = bulk.PreparedInsert(SubmissionItem, ahead) if ahead is not None else None
        with transaction.atomic():
            owned = Submission.objects.filter(pk=submission.pk, lease_owner=owner).update(lease_until=timezone.now() + LEASE)
            if not owned:
                raise SubmissionBusy  # our lease was taken over: stop without writing
            rows = _record_chunk(actor=actor, submission=submission, items=chunk, now=now, plan=plan, ahead=ahead)
            for row in rows:
                counts[ItemStatus(row.status)] += 1
            if ahead_insert is not None and rows is ahead:
                ahead_insert.execute()
            else:
                bulk.insert(SubmissionItem, rows)
            Submission.objects.filter(pk=submission.pk).update(
                processed=F("processed") + len(chunk),
                accepted=F("accepted") + counts[ItemStatus.ACCEPTED],
                duplicates=F("duplicates") + counts[ItemStatus.DUPLICATE],
                rejected=F("rejected") + counts[ItemStatus.REJECTED],
            )
        if progress is not None:
            progress(len(done) + start + len(chunk), len(done) + len(pending))
    with transaction.atomic():
        Submission.objects.filter(pk=submission.pk, lease_owner=owner).update(
            status=SubmissionStatus.DONE, finished_at=timezone.now(), lease_owner="", lease_until=None, content=""
        )
        audit_record(actor=actor, action="submission.done", object_type="submission", object_ids=[submission.pk])
    submission.refresh_from_db()
    return submission


def _requests(items: list[Prepared]) -> list[IntakeRequest]:
    return [
        IntakeRequest(data=item.data, identity=item.identity, patient_id=item.patient_id)
        for item in items
        if not item.errors and item.data is not None
    ]


def _record_chunk(
    *,
    actor: User,
    submission: Submission,
    items: list[Prepared],
    now: datetime,
    plan: IntakePlan | None,
    ahead: list[SubmissionItem] | None = None,
) -> list[SubmissionItem]:
    """Record the chunk's items as a set (relais.intake.services: the plan made before the transaction, checked and
    written in it); should the database refuse the set (a constraint no check foresaw), each item alone, so that only
    the offending one is rejected."""
    try:
        with transaction.atomic():
            return _record_items(actor=actor, submission=submission, items=items, now=now, plan=plan, ahead=ahead)
    except IntegrityError:
        rows = []
        for item in items:
            try:
                with transaction.atomic():
                    rows.extend(_record_items(actor=actor, submission=submission, items=[item], now=now))
            except IntegrityError:
                error = ItemError("item", _("This item could not be recorded: check it and send it again."))
                rows.append(
                    SubmissionItem(
                        submission=submission, position=item.position, status=ItemStatus.REJECTED, errors=json.dumps([error.as_dict()])
                    )
                )
        return rows


def _record_items(
    *,
    actor: User,
    submission: Submission,
    items: list[Prepared],
    now: datetime,
    plan: IntakePlan | None = None,
    ahead: list[SubmissionItem] | None = None,
) -> list[SubmissionItem]:
    """The items' rows; ``ahead`` itself when they were built from the plan's outcomes and the plan held."""
    recorded = screenings_commit(plan) if plan is not None else screenings_intake(actor=actor, requests=_requests(items), now=now)
    if ahead is not None and plan is not None and recorded is plan.outcomes:
        return ahead
    return _item_rows(submission=submission, items=items, recorded=recorded)


def _item_rows(*, submission: Submission, items: list[Prepared], recorded: list[IntakeOutcome | ValidationError]) -> list[SubmissionItem]:
    """One row per item: accepted, duplicate or rejected, from the outcomes of its readable items, in order."""
    readable = [item for item in items if not item.errors and item.data is not None]
    outcomes = dict(zip((item.position for item in readable), recorded, strict=True))
    rows = []
    for item in items:
        row = bulk.new(SubmissionItem, submission=submission, position=item.position)
        outcome = outcomes.get(item.position)
        if isinstance(outcome, IntakeOutcome):
            row.status = outcome.status
            if outcome.is_duplicate:
                row.duplicate_of = outcome.screening
                row.errors = json.dumps([ItemError("item", outcome.note).as_dict()])
            else:
                row.screening = outcome.screening
        else:
            errors = validation_errors(outcome) if outcome is not None else list(item.errors)
            row.status = ItemStatus.REJECTED
            row.errors = json.dumps([e.as_dict() for e in errors] or [ItemError("item", _("This item could not be read.")).as_dict()])
        rows.append(row)
    return rows


def item_errors(item: SubmissionItem) -> list[ItemError]:
    return [ItemError(**e) for e in json.loads(item.errors)] if item.errors else []


def submission_fail(*, submission: Submission, reason: str) -> None:
    Submission.objects.filter(pk=submission.pk).update(
        status=SubmissionStatus.FAILED,
        failure_reason=reason[:300],
        finished_at=timezone.now(),
        lease_owner="",
        lease_until=None,
        content="",
    )


# --- CSV files ----------------------------------------------------------------------------------------------------


def csv_prepare(submission: Submission) -> list[Prepared]:
    """Parse the stored file, the only time its rows are parsed, as of the upload time; rows in error become rejected items
    with every problem listed."""
    result = csv_import.parse_csv(submission.content.encode("utf-8"), now=submission.created_at)
    prepared: dict[int, Prepared] = {}
    for error in result.errors:
        item = prepared.setdefault(error.row_number, Prepared(position=error.row_number))
        item.errors.append(ItemError(error.column or "row", error.message, error.value))
    for row in result.rows:
        prepared[row.row_number] = Prepared(position=row.row_number, data=row.screening_input(), identity=row.identity)
    return [prepared[n] for n in sorted(prepared)]


def csv_submit(*, actor: User, data: bytes, file_name: str, idempotency_key: str = "", request_hash: str = "") -> tuple[Submission, bool]:
    """Check the file as a whole now (size, encoding, header, CSV syntax, row count) and queue it; its rows are parsed and
    recorded by the submission worker.

    Raises ValidationError({"file": [...]}) when the file cannot be read at all; nothing is stored then."""
    checked = csv_import.check_csv(data)
    if checked.file_errors:
        raise ValidationError({"file": checked.file_errors})
    text, total = checked.text, checked.data_rows
    return submission_open(
        actor=actor,
        kind=SubmissionKind.CSV,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        file_name=file_name[:200],
        content=text,
        total=total,
    )


def csv_process(*, submission: Submission, owner: str, progress: Callable[[int, int], None] | None = None) -> Submission:
    with translation.override(submission.language):
        try:
            items = csv_prepare(submission)
        except Exception:
            submission_fail(submission=submission, reason="the stored file could not be read again")
            raise
        return submission_process(submission=submission, items=items, owner=owner, progress=progress)


QUEUE = queue.LeasedQueue(
    Submission,
    open=Q(status__in=[SubmissionStatus.QUEUED, SubmissionStatus.PROCESSING]),
    lease_seconds=LEASE.total_seconds,
    order=("created_at",),
    related=("submitted_by",),
)


def submission_claim_queued(*, owner: str, now: datetime | None = None) -> Submission | None:
    """The oldest CSV submission waiting (or abandoned by a dead worker, or due again after an error) that this worker leases."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = QUEUE.claim(owner=owner, limit=1, now=now, where=Q(kind=SubmissionKind.CSV))
        if not claimed:
            return None
        submission = claimed[0]
        submission.status, submission.started_at = SubmissionStatus.PROCESSING, submission.started_at or now
        Submission.objects.filter(pk=submission.pk).update(status=submission.status, started_at=submission.started_at)
    return submission


def submission_release(*, owner: str, submission: Submission) -> int:
    """Hand the file back (clean shutdown): the next worker resumes after the last recorded chunk."""
    return QUEUE.release(owner=owner, ids=[submission.pk])


def submission_record_error(*, owner: str, submission: Submission, error: str, now: datetime | None = None) -> bool:
    """An unexpected error while recording the file: retried with backoff from the last recorded chunk, failed at the
    fifth (the pharmacy sees the file failed; the rows already recorded stay)."""
    now = now or timezone.now()
    return QUEUE.record_error(
        owner=owner,
        row=submission,
        error=error,
        backoff=lambda errors: queue.backoff_seconds(errors, base=30, cap=LEASE.total_seconds() * 5),
        parked={"status": SubmissionStatus.FAILED, "failure_reason": "gave up after errors", "finished_at": now, "content": ""},
        attempts=False,
        now=now,
    )


def error_report_rows(submission: Submission) -> list[list[object]]:
    """Rejected and duplicate items as (row, column, value, message) lines, in spreadsheet order."""
    lines: list[list[object]] = []
    items = submission.items.exclude(status=ItemStatus.ACCEPTED).order_by("position")
    for item in items:
        for error in item_errors(item):
            column = "" if error.field in ("row", "item") else error.field
            lines.append([item.position, column, error.value, error.message])
    return lines
