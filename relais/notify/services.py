"""Patient messages: a result link, queued with the screening, sent by the notify worker (the page it opens is in relais.results)."""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core import bulk, queue
from relais.notify.channels import CHANNELS
from relais.notify.models import Notification, NotificationKind, NotificationStatus, ResultLink
from relais.notify.outcome import SendOutcome, scrub
from relais.screenings.models import Screening, ScreeningStatus

LINK_LIFETIME = timedelta(days=10)
OPEN = [NotificationStatus.PENDING]
IN_DOUBT = "the worker stopped between the hand-off and its outcome; sent again under the same id"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(token: str) -> str:
    return settings.RELAIS_PUBLIC_URL.rstrip("/") + _link_path(get_script_prefix()) + token


@functools.lru_cache(maxsize=8)
def _link_path(script_prefix: str) -> str:
    """The result page's path without its token, reversed once (a batch builds a link per test)."""
    return reverse("results:open", kwargs={"token": "T"}).removesuffix("T")


def _kind(screening: Screening) -> str:
    if screening.status == ScreeningStatus.REMOVED:
        return NotificationKind.REMOVED
    if screening.version == 1:
        return NotificationKind.RESULT
    return NotificationKind.DETAILS_CORRECTED if screening.corrects_details_only else NotificationKind.CORRECTED


def link_issue(*, actor: User | None, screening: Screening, now: datetime, first: bool = False) -> tuple[ResultLink, str]:
    """A new link for the test; earlier links of the same test stop working (a pharmacist re-issues after a lock).

    ``first``: the test was just recorded, so it has no earlier link to retire (one query fewer per screening)."""
    token = secrets.token_urlsafe(32)
    if not first:
        ResultLink.objects.filter(series_id=screening.series_id, replaced_at__isnull=True).update(replaced_at=now)
    link = ResultLink.objects.create(
        token_hash=token_hash(token),
        pharmacy_id=screening.pharmacy_id,
        patient_id=screening.patient_id,
        series_id=screening.series_id,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        expires_at=now + LINK_LIFETIME,
    )
    return link, token


def notify_for_screening(
    *, actor: User | None, screening: Screening, now: datetime | None = None, fresh: bool = False
) -> list[Notification]:
    """Queue one message per contact the patient gave. Runs in the screening's transaction: both commit or neither.

    ``fresh``: the test was recorded in this transaction, so no earlier message or link exists (two queries fewer)."""
    if not connection.in_atomic_block:
        raise RuntimeError("notify_for_screening must run in the screening's transaction")
    now = now or timezone.now()
    prepared = notifications_prepare(actor=actor, screening=screening, now=now)
    if prepared is None:
        return []
    link, notifications = prepared
    if not fresh:
        # A message still waiting for an older version would send a stale link: the new one replaces it.
        Notification.objects.filter(series_id=screening.series_id, status__in=OPEN).update(status=NotificationStatus.CANCELLED, link_url="")
        ResultLink.objects.filter(series_id=screening.series_id, replaced_at__isnull=True).update(replaced_at=now)
    link.save(force_insert=True)
    for notification in notifications:
        notification.save(force_insert=True)
    audit_record(
        actor=actor,
        action="notification.queue",
        object_type="screening",
        object_ids=[screening.pk, screening.patient_id],
        pharmacy_id=screening.pharmacy_id,
    )
    return notifications


def notifications_prepare(*, actor: User | None, screening: Screening, now: datetime) -> tuple[ResultLink, list[Notification]] | None:
    """The new link and one message per contact the patient gave, not yet saved (a batch writes them together), or None
    when the patient gave no contact. The caller retires earlier links and messages of the test, if it has any."""
    patient = screening.patient
    addresses = [(name, channel.address_of(patient)) for name, channel in CHANNELS.items()]
    addresses = [(name, address) for name, address in addresses if address]
    if not addresses:
        return None
    token = secrets.token_urlsafe(32)
    created_by = actor if actor is not None and actor.is_authenticated else None
    link = bulk.new(
        ResultLink,
        token_hash=token_hash(token),
        pharmacy_id=screening.pharmacy_id,
        patient_id=screening.patient_id,
        series_id=screening.series_id,
        created_by=created_by,
        expires_at=now + LINK_LIFETIME,
    )
    url = link_url(token)
    kind = _kind(screening)
    notifications = [
        bulk.new(
            Notification,
            pharmacy_id=screening.pharmacy_id,
            patient=patient,  # the object, not its id: its retention key is read from memory
            screening=screening,
            series_id=screening.series_id,
            link=link,
            kind=kind,
            channel=channel,
            address=address,
            link_url=url,
            next_attempt_at=now,
            created_by=created_by,
            retention_key=patient.retention_key,  # a batch writes without signals: the patient's key, as relais.retention sets it
        )
        for channel, address in addresses
    ]
    return link, notifications


def _current(actor: User, screening_id: uuid.UUID | str) -> Screening:
    if not actor.sees_patients:
        raise PermissionDenied
    screening = Screening.objects.select_related("patient").get(pk=screening_id, pharmacy_id=actor.tenant_id)
    if not screening.is_current:
        screening = Screening.objects.select_related("patient").get(series_id=screening.series_id, is_current=True)
    return screening


def notify_resend(*, actor: User, screening_id: uuid.UUID | str) -> list[Notification]:
    """A new link (older ones stop working, a lock is lifted this way) sent again to the patient's current contacts."""
    with transaction.atomic():
        screening = _current(actor, screening_id)
        if not (screening.patient.email or screening.patient.phone):
            raise ValidationError({"__all__": [_("This patient gave no phone number or email: add one, then send again.")]})
        notifications = notify_for_screening(actor=actor, screening=screening)
        audit_record(actor=actor, action="notification.resend", object_type="screening", object_ids=[screening.pk, screening.patient_id])
    return notifications


def notifications_for(*, actor: User, series_id: uuid.UUID) -> list[Notification]:
    """What was sent for this test, newest first (the addresses stay encrypted unless a template asks)."""
    if not actor.sees_patients:
        raise PermissionDenied
    with transaction.atomic():
        notifications = list(Notification.objects.filter(series_id=series_id, pharmacy_id=actor.tenant_id).order_by("-created_at")[:20])
        for notification in notifications:
            notification.masked_address  # noqa: B018 - decrypt here, inside the audited transaction, not in the template
        if notifications:
            audit_record(actor=actor, action="notification.list", object_type="notification", object_ids=[n.pk for n in notifications])
    return notifications


# --- Worker side: claim with a lease, send, record with backoff -------------------------------------------------------


def _config() -> dict[str, float]:
    return settings.RELAIS_NOTIFY  # type: ignore[no-any-return]


def notify_backoff_seconds(attempts: int, *, retry_after: float | None = None) -> float:
    config = _config()
    return queue.backoff_seconds(attempts, base=config["backoff_base"], cap=config["backoff_cap"], retry_after=retry_after)


QUEUE = queue.LeasedQueue(Notification, open=Q(status__in=OPEN), lease_seconds=lambda: _config()["lease_seconds"], related=("pharmacy",))


def notify_claim(*, owner: str, limit: int = 50, now: datetime | None = None) -> list[Notification]:
    now = now or timezone.now()
    with transaction.atomic():
        claimed = QUEUE.claim(owner=owner, limit=limit, now=now)
        if any(n.handed_off_at is not None for n in claimed):
            _count_interrupted_hand_offs([n.pk for n in claimed], now)
            claimed = [n for n in QUEUE.rows.filter(pk__in=[n.pk for n in claimed]).select_related("pharmacy").order_by(*QUEUE.order)]
    return [n for n in claimed if n.status in OPEN]


def _count_interrupted_hand_offs(ids: list[uuid.UUID], now: datetime) -> None:
    """A hand-off with no recorded outcome may have reached the patient: it counts as an attempt (a message that kills
    every worker ends failed, not in a loop), and the resend carries the same id so the gateway or mail client drops it."""
    doubtful = Notification.objects.filter(id__in=ids, handed_off_at__isnull=False)
    doubtful.filter(attempts__gte=_config()["max_attempts"] - 1).update(
        status=NotificationStatus.FAILED, failed_at=now, link_url="", handed_off_at=None, attempts=F("attempts") + 1, last_error=IN_DOUBT
    )
    doubtful.update(handed_off_at=None, attempts=F("attempts") + 1, last_error=IN_DOUBT)


def notify_touch(*, owner: str, notification: Notification, now: datetime | None = None) -> bool:
    """Just before sending: still ours and still wanted? Renews the lease, so a slow batch is never claimed twice,
    and marks the hand-off in the same statement, so a worker killed before recording the outcome leaves a trace."""
    now = now or timezone.now()
    return QUEUE.renew(owner=owner, pk=notification.pk, now=now, where=Q(status__in=OPEN), handed_off_at=now)


def notify_release(*, owner: str, ids: list[uuid.UUID]) -> int:
    return QUEUE.release(owner=owner, ids=ids)


def notify_record_error(*, owner: str, notification: Notification, error: str, now: datetime | None = None) -> bool:
    """An unexpected error while preparing or sending a message: retried with backoff, failed at the fifth (notify_stats
    and the test's page show it). The message did not go out: no hand-off is left in doubt."""
    now = now or timezone.now()
    return QUEUE.record_error(
        owner=owner,
        row=notification,
        error=error,
        backoff=notify_backoff_seconds,
        also={"handed_off_at": None},
        parked={"status": NotificationStatus.FAILED, "failed_at": now, "link_url": ""},
        now=now,
    )


def notify_record(*, owner: str, outcomes: dict[Notification, SendOutcome], now: datetime | None = None) -> int:
    """Store what happened; only the lease holder writes. A sent message forgets its link (only the hash remains)."""
    now = now or timezone.now()
    updated = 0
    sent: dict[uuid.UUID, list[uuid.UUID]] = {}
    with transaction.atomic():
        for notification, outcome in outcomes.items():
            outcome = SendOutcome(outcome.kind, scrub(outcome.detail), outcome.provider_id, outcome.retry_after)
            attempts = notification.attempts + 1
            fields: dict[str, object] = {"attempts": attempts, "handed_off_at": None}
            if outcome.kind == "sent":
                fields.update(
                    status=NotificationStatus.SENT, sent_at=now, link_url="", provider_id=outcome.provider_id[:200], last_error=""
                )
            elif outcome.kind == "failed" or attempts >= _config()["max_attempts"]:
                fields.update(status=NotificationStatus.FAILED, failed_at=now, link_url="", last_error=outcome.detail[:300])
            else:
                delay = notify_backoff_seconds(attempts, retry_after=outcome.retry_after)
                fields.update(next_attempt_at=now + timedelta(seconds=delay), last_error=outcome.detail[:300])
            # A message that left is recorded as sent (and audited) even if a correction cancelled it a moment before.
            count = QUEUE.settle(owner=owner, pk=notification.pk, where=None if outcome.kind == "sent" else Q(status__in=OPEN), **fields)
            updated += count
            if count and outcome.kind == "sent":
                sent.setdefault(notification.pharmacy_id, []).append(notification.pk)
        # The address (personal data) left the system: one audit event per pharmacy, in the same transaction.
        for pharmacy_id, ids in sent.items():
            audit_record(actor=None, action="notification.send", object_type="notification", object_ids=ids, pharmacy_id=pharmacy_id)
    return updated
