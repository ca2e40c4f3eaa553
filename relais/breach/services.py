"""Breach response: open a case (figures, Art. 33 draft, Art. 34 letters as drafts), approve letters, ask for them to be
sent, and the worker side that sends them through the patient channels. Every step is audited; nothing is sent before
a pharmacy admin (their pharmacy's letters) or a platform operator has approved it."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from relais.accounts.models import Role, User
from relais.audit.services import audit_record
from relais.breach import drafts
from relais.breach.models import BreachCase, BreachLetter, LetterStatus
from relais.breach.scope import collect, figures, large_cache, resolve_target
from relais.core import queue
from relais.notify.outcome import SendOutcome, scrub


def _config() -> dict[str, Any]:
    return settings.RELAIS_BREACH  # type: ignore[no-any-return]


# --- Opening a case ---------------------------------------------------------------------------------------------------


def breach_report(
    *,
    kind: str,
    value: str = "",
    since: datetime,
    until: datetime,
    discovered_at: datetime | None = None,
    nature: str = "",
    measures: str = "",
    out_dir: Path | None = None,
    actor: User | None = None,
) -> BreachCase:
    """Count what could have been exposed between ``since`` (included) and ``until`` (excluded), write the draft letters
    in the same transaction as the case and its audit event, then the Art. 33 drafts (French, English) and the JSON report
    under ``out_dir``/<case id>/. Raises ScopeError for a selector that names nothing."""
    if since >= until:
        raise ValidationError("--since must be before --until")
    started = time.perf_counter()
    target = resolve_target(kind=kind, value=value)
    with large_cache(), transaction.atomic():
        case = BreachCase.objects.create(
            selector=kind,
            selector_ref=target.ref,
            since=since,
            until=until,
            discovered_at=discovered_at or timezone.now(),
            nature=nature.strip(),
            measures=measures.strip(),
        )
        exposure = collect(case, target)
        report = figures(case, target, exposure)
        report["seconds"] = round(time.perf_counter() - started, 3)
        folder = Path(out_dir or _config()["dir"]) / str(case.pk)
        report["drafts"] = {language: str(folder / f"art33-cnil.{language}.md") for language in drafts.LANGUAGES}
        case.report = report
        case.draft_dir = str(folder)
        case.save(update_fields=["report", "draft_dir"])
        named = [case.pk, *([target.actor_id] if target.actor_id else []), *([target.pharmacy.pk] if target.pharmacy else [])]
        audit_record(
            actor=actor,
            action="breach.report",
            object_type="breach_case",
            object_ids=named,
            detail={"selector": kind, "patients": exposure.letters, "events": exposure.events},
        )
    write_drafts(case)
    return case


def write_drafts(case: BreachCase) -> list[Path]:
    """The Art. 33 drafts and report.json, readable by their owner only (they hold counts, never identities)."""
    folder = Path(case.draft_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    files = {f"art33-cnil.{language}.md": drafts.art33(case, case.report, language) for language in drafts.LANGUAGES}
    files["report.json"] = json.dumps(case.report, indent=2, ensure_ascii=False) + "\n"
    for name, text in files.items():
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(path)
    return written


# --- Review: who may see and approve which letters --------------------------------------------------------------------

REVIEWERS = (Role.PHARMACY_ADMIN, Role.PLATFORM_OPERATOR)
READERS = (Role.PHARMACY_ADMIN, Role.PLATFORM_OPERATOR, Role.AUDITOR)


def sees_whole_cases(actor: User) -> bool:
    """Operators and auditors attached to no pharmacy see whole cases; a pharmacy admin or an auditor attached to a
    pharmacy sees only that pharmacy's part."""
    return actor.role == Role.PLATFORM_OPERATOR or (actor.role == Role.AUDITOR and actor.pharmacy_id is None)


def cases_for(actor: User) -> QuerySet[BreachCase]:
    """Every case for those who see whole cases; otherwise the cases with letters for the actor's pharmacy."""
    if actor.role not in READERS:
        raise PermissionDenied
    if sees_whole_cases(actor):
        return BreachCase.objects.all()
    if actor.pharmacy_id is None:
        raise PermissionDenied  # a pharmacy admin without a pharmacy: nothing is theirs
    # Per case through the (case, pharmacy) index: letters have no index on the pharmacy alone.
    own = BreachLetter.objects.filter(case_id=OuterRef("pk"), pharmacy_id=actor.pharmacy_id)
    return BreachCase.objects.filter(Exists(own)).annotate(
        own_people=Subquery(own.order_by().values("case_id").annotate(n=Count("*")).values("n")[:1])
    )


def case_for(actor: User, case_id: uuid.UUID) -> BreachCase:
    """The case, or DoesNotExist (404) when it is not the actor's to see."""
    return cases_for(actor).get(pk=case_id)


def letters_for(actor: User, case: BreachCase, *, pharmacy_id: uuid.UUID | None = None) -> QuerySet[BreachLetter]:
    """The case's letters the actor may review: an admin only their pharmacy's (another pharmacy's is DoesNotExist: 404)."""
    letters = BreachLetter.objects.filter(case=case)
    if actor.role not in READERS:
        raise PermissionDenied
    if sees_whole_cases(actor):
        return letters.filter(pharmacy_id=pharmacy_id) if pharmacy_id is not None else letters
    if actor.pharmacy_id is None:
        raise PermissionDenied
    if pharmacy_id is not None and pharmacy_id != actor.pharmacy_id:
        raise BreachLetter.DoesNotExist
    return letters.filter(pharmacy_id=actor.pharmacy_id)


def letter_status_counts(letters: QuerySet[BreachLetter]) -> dict[uuid.UUID, Counter[str]]:
    counts: dict[uuid.UUID, Counter[str]] = {}
    for row in letters.values("pharmacy_id", "status").annotate(n=Count("*")).order_by():
        counts.setdefault(row["pharmacy_id"], Counter())[row["status"]] = row["n"]
    return counts


def _reviewable(actor: User, case_id: uuid.UUID, pharmacy_id: uuid.UUID | None) -> tuple[BreachCase, QuerySet[BreachLetter]]:
    if actor.role not in REVIEWERS:
        raise PermissionDenied
    case = case_for(actor, case_id)
    letters = letters_for(actor, case, pharmacy_id=pharmacy_id)
    if not letters.exists():
        raise BreachLetter.DoesNotExist
    return case, letters


def _per_pharmacy(letters: QuerySet[BreachLetter]) -> dict[uuid.UUID, int]:
    return {row["pharmacy_id"]: row["n"] for row in letters.values("pharmacy_id").annotate(n=Count("*")).order_by()}


def letters_approve(*, actor: User, case_id: uuid.UUID, pharmacy_id: uuid.UUID | None = None) -> int:
    """Approve the draft letters in the actor's reach (one pharmacy, or every one for an operator); audited per pharmacy."""
    now = timezone.now()
    with transaction.atomic():
        case, letters = _reviewable(actor, case_id, pharmacy_id)
        drafts_ = letters.filter(status=LetterStatus.DRAFT)
        per_pharmacy = _per_pharmacy(drafts_)
        approved = drafts_.update(status=LetterStatus.APPROVED, approved_at=now, approved_by=actor)
        for pharmacy, count in per_pharmacy.items():
            audit_record(
                actor=actor,
                action="breach.letters_approve",
                object_type="breach_case",
                object_ids=[case.pk, pharmacy],
                pharmacy_id=pharmacy,
                detail={"letters": count},
            )
    return approved


def letters_send(*, actor: User, case_id: uuid.UUID, pharmacy_id: uuid.UUID | None = None) -> int:
    """Ask for the approved letters in the actor's reach to be sent; the breach letter worker sends them."""
    now = timezone.now()
    with transaction.atomic():
        case, letters = _reviewable(actor, case_id, pharmacy_id)
        ready = letters.filter(status=LetterStatus.APPROVED, send_requested_at__isnull=True)
        per_pharmacy = _per_pharmacy(ready)
        queued = ready.update(send_requested_at=now, next_attempt_at=now)
        for pharmacy, count in per_pharmacy.items():
            audit_record(
                actor=actor,
                action="breach.letters_send",
                object_type="breach_case",
                object_ids=[case.pk, pharmacy],
                pharmacy_id=pharmacy,
                detail={"letters": count},
            )
    return queued


# --- Worker side: claim approved letters with a lease, address them at send time, record and audit -------------------

QUEUE = queue.LeasedQueue(
    BreachLetter,
    open=Q(status=LetterStatus.APPROVED, send_requested_at__isnull=False),
    lease_seconds=lambda: float(_config()["lease_seconds"]),
    related=("pharmacy", "case"),
)


def letters_claim(*, owner: str, limit: int = 20, now: datetime | None = None) -> list[BreachLetter]:
    return QUEUE.claim(owner=owner, limit=limit, now=now)


def letter_touch(*, owner: str, letter: BreachLetter, now: datetime | None = None) -> bool:
    """Just before the hand-off: still ours and still approved? Marks the hand-off (a crash there leaves a trace)."""
    now = now or timezone.now()
    return QUEUE.renew(owner=owner, pk=letter.pk, now=now, where=Q(status=LetterStatus.APPROVED), handed_off_at=now)


def letter_release(*, owner: str, ids: list[uuid.UUID]) -> int:
    return QUEUE.release(owner=owner, ids=ids)


def letter_record(*, owner: str, letter: BreachLetter, channel: str, outcome: SendOutcome, now: datetime | None = None) -> bool:
    """Store the outcome as the lease holder; a sent letter (or one that cannot be sent) is audited in the same transaction."""
    now = now or timezone.now()
    attempts = letter.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts, "handed_off_at": None, "channel": channel}
    action = ""
    if outcome.kind == "sent":
        fields.update(status=LetterStatus.SENT, sent_at=now, provider_id=outcome.provider_id[:200], last_error="")
        action = "breach.letter_send"
    elif outcome.kind == "no_contact":
        fields.update(status=LetterStatus.NO_CONTACT, last_error="")
        action = "breach.letter_no_contact"
    elif outcome.kind == "failed" or attempts >= int(_config()["max_attempts"]):
        fields.update(status=LetterStatus.FAILED, last_error=scrub(outcome.detail)[:300])
        action = "breach.letter_failed"
    else:
        delay = queue.backoff_seconds(
            attempts, base=float(_config()["backoff_base"]), cap=float(_config()["backoff_cap"]), retry_after=outcome.retry_after
        )
        fields.update(next_attempt_at=now + timedelta(seconds=delay), last_error=scrub(outcome.detail)[:300])
    with transaction.atomic():
        # A letter that left is recorded as sent even if its lease ran out meanwhile: the patient has it.
        settled = QUEUE.settle(owner=owner, pk=letter.pk, **fields)
        if not settled and outcome.kind == "sent":
            settled = BreachLetter.objects.filter(pk=letter.pk).update(**fields)
        if settled and action:
            audit_record(
                actor=None,
                action=action,
                object_type="breach_letter",
                object_ids=[letter.pk, letter.patient_id, letter.case_id],
                pharmacy_id=letter.pharmacy_id,
                detail={"channel": channel} if channel else {},
            )
    return bool(settled)


def letter_record_error(*, owner: str, letter: BreachLetter, error: str, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return QUEUE.record_error(
        owner=owner,
        row=letter,
        error=error,
        backoff=lambda n: queue.backoff_seconds(n, base=float(_config()["backoff_base"]), cap=float(_config()["backoff_cap"])),
        also={"handed_off_at": None},
        parked={"status": LetterStatus.FAILED},
        now=now,
    )
