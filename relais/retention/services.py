"""The retention purge: what is past its retention goes, class by class, in small transactions.

Each batch deletes and writes its audit event (class and count, never an identity) in one transaction, so a killed run
leaves consistent data and the next run carries on. Tests still queued for the national platform are kept and
reported as "undelivered", whatever their age: the operator must settle them first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q, signals
from django.utils import timezone
from tqdm import tqdm

from relais.api.models import IdempotentResponse
from relais.audit.services import audit_record
from relais.certificates.models import Certificate, CertificateRefusal
from relais.core import crypto
from relais.core.models import DataKey
from relais.notify.models import Notification, NotificationStatus, ResultLink
from relais.patients.models import Patient
from relais.patients.retention_keys import reencrypt
from relais.retention import keys
from relais.screenings.models import Screening, ScreeningResult
from relais.screenings.vocab import RESULT_DETECTED
from relais.submissions.models import Submission, SubmissionItem, SubmissionStatus
from relais.testqueue.models import PendingTest
from relais.transfer.models import OPEN_STATUSES, OutboxMessage, TransferStatus
from relais.webhooks.models import DeliveryStatus, WebhookDelivery

AUDIT_ACTION = "retention.purge"
# Test hook: called after each committed batch with (class name, rows so far); lets a test kill a run mid-way.
after_batch: Callable[[str, int], None] | None = None


@dataclass
class _Run:
    now: datetime
    dry_run: bool
    batch_size: int
    progress: TextIO | None
    days: dict[str, int] = field(default_factory=lambda: dict(settings.RELAIS_RETENTION))

    def cutoff(self, name: str) -> datetime:
        return self.now - timedelta(days=self.days[name])

    def bar(self, name: str, total: int) -> Any:
        return tqdm(total=total, desc=name, unit="row", file=self.progress, disable=self.progress is None, leave=False)


def _batches(
    run: _Run, name: str, query: Callable[[], models.QuerySet[Any]], delete: Callable[[list[Any]], Any], *, keyset: bool = False
) -> int:
    """Delete ``query()``'s rows ``batch_size`` at a time, one transaction and one audit event per batch. ``delete``
    returns the rows removed, or {"rows": n, ...other counts for the audit event}."""
    total = query().count()
    if run.dry_run:
        return total
    done = 0
    last: Any = None
    with run.bar(name, total) as bar:
        while True:
            with transaction.atomic():
                if keyset:
                    # Rows updated in place still match the filter: walk the whole table by primary key instead
                    # (a plain index range; filtered and sorted, each batch read every settled row again), and let
                    # ``delete`` apply the filter to the range.
                    rows = query().model._default_manager.order_by("pk")
                    rows = rows if last is None else rows.filter(pk__gt=last)
                else:
                    rows = query()
                ids = list(rows.values_list("pk", flat=True)[: run.batch_size])
                if not ids:
                    break
                outcome = delete(ids)
                counts = outcome if isinstance(outcome, dict) else {"rows": outcome}
                removed = counts["rows"]
                if removed or not keyset:
                    audit_record(actor=None, action=AUDIT_ACTION, object_type=name, detail={"class": name, **counts})
            done += removed
            last = ids[-1]
            bar.update(removed if keyset else len(ids))
            if after_batch is not None:
                after_batch(name, done)
    return done


def _delete(rows: models.QuerySet[Any]) -> int:
    """Delete ``rows`` as Django's collector would, without loading each row as an object (it did: 25 s of the 30 s of
    50,000 tests): CASCADE relations deleted the same way, SET_NULL ones emptied, PROTECT ones left to the database's
    foreign keys (a blocking row fails the batch's transaction). The collector itself whenever anything else applies."""
    model = rows.model
    relations = [
        f for f in model._meta.get_fields(include_hidden=True) if f.auto_created and not f.concrete and (f.one_to_one or f.one_to_many)
    ]
    simple = (models.CASCADE, models.SET_NULL, models.PROTECT, models.DO_NOTHING)
    if (
        signals.pre_delete.has_listeners(model)
        or signals.post_delete.has_listeners(model)
        or any(r.on_delete not in simple or not r.field.db_constraint for r in relations)  # type: ignore[union-attr]
    ):
        return rows.delete()[1].get(model._meta.label, 0)
    ids = list(rows.values_list("pk", flat=True))
    if not ids:
        return 0
    for relation in relations:
        related = relation.related_model._base_manager.filter(**{f"{relation.field.name}__in": ids})  # type: ignore[union-attr]
        if relation.on_delete is models.CASCADE:  # type: ignore[union-attr]
            _delete(related)
        elif relation.on_delete is models.SET_NULL:  # type: ignore[union-attr]
            related.update(**{relation.field.name: None})  # type: ignore[union-attr]
    return model._base_manager.filter(pk__in=ids)._raw_delete(rows.db)


def _plain_delete(model: type[models.Model]) -> Callable[[list[Any]], int]:
    def delete(ids: list[Any]) -> int:
        return _delete(model._default_manager.filter(pk__in=ids))

    return delete


def _sessions(run: _Run) -> dict[str, Any]:
    rows = _batches(run, "sessions", lambda: Session.objects.filter(expire_date__lte=run.cutoff("sessions")), _plain_delete(Session))
    return {"rows": rows}


def _login_attempts(run: _Run) -> dict[str, Any]:
    cut = run.cutoff("login_attempts")
    rows = 0
    models_: list[type[models.Model]] = [AccessAttempt, AccessFailureLog, AccessLog]
    for model in models_:

        def query(m: type[models.Model] = model) -> models.QuerySet[Any]:
            return m._default_manager.filter(attempt_time__lte=cut)

        rows += _batches(run, "login_attempts", query, _plain_delete(model))
    return {"rows": rows}


def _idempotency(run: _Run) -> dict[str, Any]:
    cut = run.cutoff("idempotency")
    return {
        "rows": _batches(
            run, "idempotency", lambda: IdempotentResponse.objects.filter(created_at__lte=cut), _plain_delete(IdempotentResponse)
        )
    }


def _webhook_deliveries(run: _Run) -> dict[str, Any]:
    cut = run.cutoff("webhook_deliveries")
    settled = [DeliveryStatus.DELIVERED, DeliveryStatus.FAILED]
    rows = _batches(
        run,
        "webhook_deliveries",
        lambda: WebhookDelivery.objects.filter(status__in=settled, created_at__lte=cut),
        _plain_delete(WebhookDelivery),
    )
    pending = WebhookDelivery.objects.filter(created_at__lte=cut).exclude(status__in=settled).count()
    return {"rows": rows, "pending_kept": pending}


def _submissions(run: _Run) -> dict[str, Any]:
    cut = run.cutoff("submissions")
    finished = [SubmissionStatus.DONE, SubmissionStatus.FAILED]
    items = SubmissionItem.objects.filter(submission__status__in=finished, submission__created_at__lte=cut).count()

    def delete(ids: list[Any]) -> int:
        SubmissionItem.objects.filter(submission_id__in=ids).delete()
        return Submission.objects.filter(pk__in=ids).delete()[1].get(Submission._meta.label, 0)

    rows = _batches(run, "submissions", lambda: Submission.objects.filter(status__in=finished, created_at__lte=cut), delete)
    return {"rows": rows, "items": items}


def _notifications(run: _Run) -> dict[str, Any]:
    cut = run.cutoff("notifications")
    settled = [NotificationStatus.SENT, NotificationStatus.FAILED, NotificationStatus.CANCELLED]
    rows = _batches(
        run,
        "notifications",
        lambda: Notification.objects.filter(status__in=settled, created_at__lte=cut),
        _plain_delete(Notification),
    )
    return {"rows": rows}


def _result_links(run: _Run) -> dict[str, Any]:
    cut = run.cutoff("result_links")
    used = Notification.objects.filter(link_id=OuterRef("pk"))
    rows = _batches(
        run, "result_links", lambda: ResultLink.objects.filter(created_at__lte=cut).filter(~Exists(used)), _plain_delete(ResultLink)
    )
    return {"rows": rows}


_TEXTS = ("ack_text", "rejection_reason", "last_error")


def _outbox_payloads(run: _Run) -> dict[str, Any]:
    """Acknowledgement texts and rejection reasons may quote identity: emptied once settled long enough; the row (status,
    times) stays with its test."""
    cut = run.cutoff("outbox_payloads")
    settled = Q(status=TransferStatus.ACKNOWLEDGED, acknowledged_at__lte=cut) | Q(status=TransferStatus.REJECTED, rejected_at__lte=cut)
    settled |= Q(status=TransferStatus.SUPERSEDED, created_at__lte=cut)
    texts = ~Q(ack_text="") | ~Q(rejection_reason="") | ~Q(last_error="")  # _TEXTS

    settled_on = {
        TransferStatus.ACKNOWLEDGED: "acknowledged_at",
        TransferStatus.REJECTED: "rejected_at",
        TransferStatus.SUPERSEDED: "created_at",
    }

    def scrub(ids: list[Any]) -> int:
        # ``settled`` and ``texts`` tested here on the range's rows: in SQL, SQLite's planner picked the status index
        # over the primary keys and read every acknowledged message for each batch (22 s for 100,000 messages).
        due = [
            row["pk"]
            for row in OutboxMessage.objects.filter(pk__in=ids).values("pk", "status", *settled_on.values(), *_TEXTS)
            if row["status"] in settled_on
            and row[settled_on[row["status"]]] is not None
            and row[settled_on[row["status"]]] <= cut
            and any(row[name] for name in _TEXTS)
        ]
        return OutboxMessage.objects.filter(pk__in=due).update(**dict.fromkeys(_TEXTS, ""))

    return {"rows": _batches(run, "outbox_payloads", lambda: OutboxMessage.objects.filter(settled).filter(texts), scrub, keyset=True)}


def _expired_screenings(run: _Run) -> models.QuerySet[Screening]:
    """Versions of tests whose retention is over: no version sampled within the period (the positive one if any
    version of the test was positive)."""
    cut_negative, cut_positive = run.cutoff("identities"), run.cutoff("identities_positive")
    series = OuterRef("series_id")
    recent = Screening.objects.filter(series_id=series, sampled_at__gt=cut_negative)
    recent_positive = Screening.objects.filter(series_id=series, sampled_at__gt=cut_positive)
    positive = ScreeningResult.objects.filter(screening__series_id=series, result=RESULT_DETECTED)
    return Screening.objects.filter(sampled_at__lte=cut_negative).filter(~Exists(recent), ~Exists(positive) | ~Exists(recent_positive))


def _undelivered() -> Exists:
    return Exists(OutboxMessage.objects.filter(series_id=OuterRef("series_id"), status__in=OPEN_STATUSES))


def _delete_screenings(ids: list[Any]) -> tuple[int, int]:
    """Delete the whole tests (every version) these versions belong to, what hangs on them, and the patients left
    without any test: (versions, patients) removed."""
    series = list(Screening.objects.filter(pk__in=ids).values_list("series_id", flat=True).distinct())
    versions = list(Screening.objects.filter(series_id__in=series).values_list("pk", flat=True))
    patients = set(Screening.objects.filter(pk__in=versions).values_list("patient_id", flat=True))
    _delete(Notification.objects.filter(Q(screening_id__in=versions) | Q(link__series_id__in=series)))
    _delete(ResultLink.objects.filter(series_id__in=series))
    _delete(WebhookDelivery.objects.filter(screening_id__in=versions))
    SubmissionItem.objects.filter(screening_id__in=versions).update(screening=None)
    SubmissionItem.objects.filter(duplicate_of_id__in=versions).update(duplicate_of=None)
    _delete(CertificateRefusal.objects.filter(screening_id__in=versions))
    _delete(Certificate.objects.filter(screening_id__in=versions))
    _delete(OutboxMessage.objects.filter(screening_id__in=versions))
    _delete(ScreeningResult.objects.filter(screening_id__in=versions))
    Screening.objects.filter(pk__in=versions).update(supersedes=None)  # versions point at each other: unlink first
    removed = _delete(Screening.objects.filter(pk__in=versions))
    tested = Screening.objects.filter(patient_id=OuterRef("pk"))
    merged_here = Patient.objects.filter(merged_into_id=OuterRef("pk"))
    untested = list(
        Patient.objects.filter(pk__in=patients).filter(~Exists(tested), ~Exists(merged_here), ~_swab_waiting()).values_list("pk", flat=True)
    )
    return removed, _delete_patients(untested)


def _swab_waiting() -> Exists:
    """A swab of the patient in the test queue, result not entered yet: the patient is about to be tested, not gone."""
    return Exists(PendingTest.objects.filter(patient_id=OuterRef("pk"), done_at__isnull=True, cancelled_at__isnull=True))


def _delete_patients(ids: list[Any]) -> int:
    _delete(Notification.objects.filter(patient_id__in=ids))
    _delete(ResultLink.objects.filter(patient_id__in=ids))
    return _delete(Patient.objects.filter(pk__in=ids))


def _identities(run: _Run) -> dict[str, Any]:
    """Tests past retention go whole; a patient goes with its last test (identity stays while any test is kept)."""
    expired = _expired_screenings(run)
    undelivered = expired.filter(_undelivered()).values("series_id").distinct().count()
    deletable = expired.filter(~_undelivered())
    patients = [0]

    def delete(ids: list[Any]) -> dict[str, int]:
        removed, gone = _delete_screenings(ids)
        patients[0] += gone
        return {"rows": removed, "patients": gone}

    if run.dry_run:
        kept = Screening.objects.filter(patient_id=OuterRef("pk")).exclude(pk__in=deletable.values("pk"))
        going = Patient.objects.filter(Exists(deletable.filter(patient_id=OuterRef("pk"))), ~Exists(kept))
        patients[0] = going.count()
    screenings = _batches(run, "screenings", lambda: deletable, delete)  # a batch takes whole tests
    return {"screenings": screenings, "patients": patients[0] + _untested_patients(run), "undelivered": undelivered}


def _untested_patients(run: _Run) -> int:
    """Records without any test, registered before the period (a registration never tested, merged records)."""
    cut = run.cutoff("identities")
    tested = Screening.objects.filter(patient_id=OuterRef("pk"))
    merged_here = Patient.objects.filter(merged_into_id=OuterRef("pk"))

    def query() -> models.QuerySet[Patient]:
        return Patient.objects.filter(created_at__lte=cut).filter(~Exists(tested), ~Exists(merged_here), ~_swab_waiting())

    total = 0
    while True:  # a merged-into record becomes free once the records merged into it are gone
        removed = _batches(run, "patients", query, _delete_patients)
        total += removed
        if removed == 0 or run.dry_run:
            return total


def _keys(run: _Run) -> dict[str, Any]:
    """Retention keys of past days: rows still using one (a positive test, a later message) move to a later key, then
    the key is destroyed: its secret file first, so no copy of the database can unwrap it any more."""
    today = timezone.localdate(run.now)
    past = list(DataKey.objects.filter(expires_on__lte=today).order_by("expires_on").values_list("key_id", flat=True))
    tomorrow = today + timedelta(days=1)  # rows kept move to a key the loop will not reach
    if run.dry_run:
        return {"keys_destroyed": len(past), "rows_rekeyed": 0}
    destroyed = rekeyed = 0
    with run.bar("keys", len(past)) as bar:
        for key_id in past:
            with transaction.atomic():
                for patient in Patient.objects.select_for_update().filter(retention_key=key_id):
                    reencrypt(patient, crypto.retention_key_id(max(keys.patient_expiry_day(patient), tomorrow)))
                    rekeyed += 1
                for note in Notification.objects.select_for_update().filter(retention_key=key_id).select_related("patient"):
                    reencrypt(note, note.patient.retention_key)
                    rekeyed += 1
                crypto.destroy_key(key_id)
                audit_record(actor=None, action=AUDIT_ACTION, object_type="keys", detail={"class": "keys", "keys_destroyed": 1})
            destroyed += 1
            bar.update(1)
            if after_batch is not None:
                after_batch("keys", destroyed)
    return {"keys_destroyed": destroyed, "rows_rekeyed": rekeyed}


def _audit(run: _Run) -> dict[str, Any]:
    from relais.audit.seal import purge_sealed_segments

    return purge_sealed_segments(before=run.cutoff("audit"), dry_run=run.dry_run)


STEPS: list[tuple[str, Callable[[_Run], dict[str, Any]]]] = [
    ("sessions", _sessions),
    ("login_attempts", _login_attempts),
    ("idempotency", _idempotency),
    ("webhook_deliveries", _webhook_deliveries),
    ("submissions", _submissions),
    ("notifications", _notifications),
    ("result_links", _result_links),
    ("outbox_payloads", _outbox_payloads),
    ("identities", _identities),
    ("keys", _keys),
    ("audit", _audit),
]


def purge(*, now: datetime | None = None, dry_run: bool = False, batch_size: int = 1000, progress: TextIO | None = None) -> dict[str, Any]:
    """Remove (or, dry, count) what is past retention at ``now``; returns the per-class report."""
    run = _Run(now=now or timezone.now(), dry_run=dry_run, batch_size=batch_size, progress=progress)
    report: dict[str, Any] = {"now": run.now.isoformat(), "dry_run": dry_run, "retention_days": run.days, "classes": {}}
    started = time.monotonic()
    for name, step in STEPS:
        began = time.monotonic()
        result = step(run)
        result["seconds"] = round(time.monotonic() - began, 3)
        report["classes"][name] = result
    report["seconds"] = round(time.monotonic() - started, 3)
    if not dry_run:
        with transaction.atomic():
            counts = {name: {k: v for k, v in result.items() if k != "seconds"} for name, result in report["classes"].items()}
            audit_record(actor=None, action="retention.purge_done", detail={"classes": counts})
    return report


def purge_job(now: datetime) -> dict[str, Any]:
    """The daily scheduled run (relais.core.schedule)."""
    return purge(now=now)


def iter_classes() -> Iterator[str]:
    return (name for name, _ in STEPS)
