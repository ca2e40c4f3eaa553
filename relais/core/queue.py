"""The one leased queue every background job uses: claim due rows with a lease, release, settle as the lease holder.

A row is claimed by writing ``lease_owner`` and ``lease_until``; another worker takes it only once the lease has run
out (its holder died), so nothing is lost and, while the holder lives, nothing is done twice. Rows are settled (or
given back) only by the holder of their lease: a worker whose lease ran out must not overwrite a newer outcome.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import socket
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.expressions import Combinable
from django.utils import timezone

RETRY_AFTER_LIMIT = 6 * 3600.0  # a receiver cannot park a row beyond a few hours
MAX_ERRORS = 5  # unexpected errors on one row before it is parked as failed

M = TypeVar("M", bound=models.Model)


def worker_id() -> str:
    """host:pid:random, written in lease_owner: tells an operator which process holds a row."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def backoff_seconds(attempts: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; a receiver's Retry-After is a floor, but never beyond our own cap."""
    ceiling = min(cap, base * 2.0 ** min(max(0, attempts - 1), 64))  # the exponent is bounded: no overflow
    floor = min(retry_after, cap) if retry_after is not None and math.isfinite(retry_after) and retry_after > 0 else 0.0
    return max(random.uniform(ceiling / 2, ceiling), floor)


_SECONDS = re.compile(r"\d{1,12}(\.\d{1,6})?")


def parse_retry_after(value: str | None, *, now: datetime | None = None, limit: float = RETRY_AFTER_LIMIT) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110 10.2.3), at most ``limit``.

    None for a missing or unreadable value; 0 for a date in the past. Never negative, never infinite."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit() and len(text) > 12:
        return limit  # a huge number of seconds: wait as long as we ever do
    if _SECONDS.fullmatch(text):
        return min(float(text), limit)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # "-0000": the RFC says HTTP dates are in GMT
    seconds = (when - (now or timezone.now())).total_seconds()
    return min(max(seconds, 0.0), limit)


def error_summary(exc: BaseException) -> str:
    """The class and the place of an unexpected error, never its message: a decryption error or a bug may echo
    personal data, and this text is stored on the row and shown to operators."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" in {frames[-1].name} ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}{where}: unexpected error, see the worker log"


def log_unexpected(log: logging.Logger, exc: BaseException, what: str) -> str:
    """Log the class and the stack of an unexpected error, without its message (see error_summary)."""
    summary = error_summary(exc)
    stack = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    log.error("%s: %s\n%s", what, summary, stack.rstrip())
    return summary


@dataclass(frozen=True)
class LeasedQueue(Generic[M]):
    """Rows of ``model`` still to work on (``open``), due at ``next_attempt_at``, leased through lease_owner/lease_until.

    The model needs: lease_owner, lease_until, next_attempt_at (may be null: due at once), attempts, error_count,
    last_error."""

    model: type[M]
    open: Q
    lease_seconds: Callable[[], float]
    order: tuple[str, ...] = ("next_attempt_at", "created_at")
    related: tuple[str, ...] | None = None  # select_related of the claimed rows: None follows every non-null foreign key

    @property
    def rows(self) -> models.QuerySet[M]:
        return self.model._default_manager.all()

    def claim(self, *, owner: str, limit: int, now: datetime | None = None, where: Q | Combinable | None = None) -> list[M]:
        """Lease up to ``limit`` due rows, oldest first. On PostgreSQL several workers claim side by side: each skips
        the rows another is claiming (SKIP LOCKED)."""
        now = now or timezone.now()
        with transaction.atomic():
            due = (
                self.rows.filter(self.open)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            )
            if where is not None:
                due = due.filter(where)
            due = due.order_by(*self.order)
            if connection.vendor == "postgresql":
                due = due.select_for_update(skip_locked=True, of=("self",))
            ids = list(due.values_list("pk", flat=True)[:limit])
            if ids:
                self.rows.filter(pk__in=ids).update(lease_owner=owner, lease_until=now + timedelta(seconds=self.lease_seconds()))
        rows = self.rows.filter(pk__in=ids)
        rows = rows.select_related() if self.related is None else rows.select_related(*self.related) if self.related else rows
        by_id = {row.pk: row for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def held(self, *, owner: str, pk: Any) -> models.QuerySet[M]:
        """The row, if this worker still holds its lease."""
        return self.rows.filter(pk=pk, lease_owner=owner)

    def renew(self, *, owner: str, pk: Any, now: datetime | None = None, where: Any = None, **fields: Any) -> bool:
        """Extend the lease (a long job); False when it was lost (or ``where`` no longer holds): the caller stops."""
        until = (now or timezone.now()) + timedelta(seconds=self.lease_seconds())
        return bool(self.held(owner=owner, pk=pk).filter(where or Q()).update(lease_until=until, **fields))

    def release(self, *, owner: str, ids: Iterable[Any]) -> int:
        """Give back rows not started (clean shutdown): another worker takes them at once."""
        return self.rows.filter(pk__in=list(ids), lease_owner=owner).update(lease_owner="", lease_until=None)

    def settle(self, *, owner: str, pk: Any, where: Any = None, **fields: Any) -> int:
        """Write an outcome and end the lease, only as the lease holder. Returns 1 when written, 0 when the lease was lost."""
        return self.held(owner=owner, pk=pk).filter(where or Q()).update(lease_owner="", lease_until=None, **fields)

    def record_error(
        self,
        *,
        owner: str,
        row: M,
        error: str,
        backoff: Callable[[int], float],
        parked: dict[str, Any],
        also: dict[str, Any] | None = None,
        max_errors: int = MAX_ERRORS,
        now: datetime | None = None,
        attempts: bool = True,
    ) -> bool:
        """An unexpected error while processing ``row``: count it, retry after a backoff, and park the row
        (``parked``: the fields of its failed state) at the ``max_errors``-th one; ``also``: fields written either way.
        True when parked."""
        now = now or timezone.now()
        errors = getattr(row, "error_count", 0) + 1
        max_length = getattr(self.model._meta.get_field("last_error"), "max_length", None) or 300
        fields: dict[str, Any] = {**(also or {}), "error_count": errors, "last_error": error[:max_length]}
        if attempts:
            fields["attempts"] = getattr(row, "attempts", 0) + 1
        is_parked = errors >= max_errors
        if is_parked:
            fields.update(parked)
        else:
            fields["next_attempt_at"] = now + timedelta(seconds=backoff(errors))
        return bool(self.settle(owner=owner, pk=row.pk, **fields)) and is_parked


def unstarted(claimed: Sequence[M], done: Iterable[M]) -> list[Any]:
    """Primary keys of the claimed rows without an outcome (to give back)."""
    finished = {row.pk for row in done}
    return [row.pk for row in claimed if row.pk not in finished]
