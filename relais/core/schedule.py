"""Periodic jobs (the retention purge, the unusual-access rules) on the shared queue core.

Apps register a ``Job`` in their ``AppConfig.ready()``; each job has one ``ScheduledJob`` row, claimed through the
leased queue, so a job runs once per period however many workers poll, and a killed run is taken up again when its
lease runs out. A job returns a JSON-able report, kept on its row; an exception is recorded (class and place, never the
message) and the job is tried again after a backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from relais.core.models import ScheduledJob
from relais.core.queue import LeasedQueue, backoff_seconds, log_unexpected, worker_id
from relais.core.worker import Worker

log = logging.getLogger("relais.schedule")

LEASE_SECONDS = 3600.0  # longer than any job's run; a killed run is retried once it has passed


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[datetime], dict[str, Any]]


_JOBS: dict[str, Job] = {}


def register(job: Job) -> None:
    """Called from an app's ready(); registering the same name again replaces it (reloads, tests)."""
    if job.every <= timedelta(0):
        raise ValueError(f"job {job.name}: the period must be positive")
    _JOBS[job.name] = job


def jobs() -> dict[str, Job]:
    return dict(_JOBS)


def _queue() -> LeasedQueue[ScheduledJob]:
    return LeasedQueue(ScheduledJob, open=Q(name__in=list(_JOBS)), lease_seconds=lambda: LEASE_SECONDS, order=("next_attempt_at", "name"))


def ensure_rows() -> None:
    """One row per registered job; a new job is due at once."""
    existing = set(ScheduledJob.objects.filter(name__in=list(_JOBS)).values_list("name", flat=True))
    for name in sorted(set(_JOBS) - existing):
        ScheduledJob.objects.get_or_create(name=name)


def _execute(job: Job, *, row: ScheduledJob, owner: str, now: datetime, queue: LeasedQueue[ScheduledJob]) -> dict[str, Any] | None:
    started = timezone.now()
    ScheduledJob.objects.filter(pk=row.pk, lease_owner=owner).update(last_started_at=started)
    try:
        report = job.run(now)
    except Exception as exc:
        summary = log_unexpected(log, exc, f"scheduled job {job.name} failed")
        queue.record_error(
            owner=owner,
            row=row,
            error=summary,
            backoff=lambda n: backoff_seconds(n, base=60, cap=job.every.total_seconds()),
            parked={"next_attempt_at": started + job.every, "error_count": 0},
            max_errors=10**6,
        )
        return None
    finished = timezone.now()
    queue.settle(
        owner=owner,
        pk=row.pk,
        next_attempt_at=started + job.every,
        last_finished_at=finished,
        last_report=report,
        attempts=row.attempts + 1,
        error_count=0,
        last_error="",
    )
    log.info("scheduled job %s done in %.1f s", job.name, (finished - started).total_seconds())
    return report


def run_due(*, now: datetime | None = None, owner: str | None = None, limit: int = 10) -> dict[str, dict[str, Any] | None]:
    """Run every job that is due; returns each run job's report (None when it failed)."""
    ensure_rows()
    owner = owner or worker_id()
    queue = _queue()
    claimed = queue.claim(owner=owner, limit=limit, now=timezone.now())
    reports: dict[str, dict[str, Any] | None] = {}
    for row in claimed:
        reports[row.name] = _execute(_JOBS[row.name], row=row, owner=owner, now=now or timezone.now(), queue=queue)
    return reports


def run_now(name: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Run one job at once (an operator, a test), whatever its schedule; waits for no lease but takes one, so the
    worker does not start the same job meanwhile. Raises what the job raises."""
    if name not in _JOBS:
        raise KeyError(name)
    ensure_rows()
    owner = worker_id()
    queue = _queue()
    moment = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=moment)
    if not ScheduledJob.objects.filter(free, name=name).update(lease_owner=owner, lease_until=moment + timedelta(seconds=LEASE_SECONDS)):
        raise RuntimeError(f"scheduled job {name} is running elsewhere; try again when it has finished")
    row = ScheduledJob.objects.get(name=name)
    job = _JOBS[name]
    started = timezone.now()
    try:
        report = job.run(now or started)
    except Exception:
        queue.release(owner=owner, ids=[row.pk])
        raise
    queue.settle(
        owner=owner,
        pk=row.pk,
        last_started_at=started,
        last_finished_at=timezone.now(),
        last_report=report,
        next_attempt_at=started + job.every,
    )
    return report


class ScheduleWorker(Worker):
    name = "schedule"
    poll = 30.0
    counted = ("runs",)

    def round(self) -> int:
        reports = run_due(owner=self.owner)
        self.counts["runs"] += len(reports)
        return len(reports)
