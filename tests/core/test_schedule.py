from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from relais.core import schedule
from relais.core.models import ScheduledJob


@pytest.fixture
def calls() -> Iterator[list[datetime]]:
    seen: list[datetime] = []
    saved = schedule.jobs()
    schedule._JOBS.clear()

    def tick(now: datetime) -> dict[str, Any]:
        seen.append(now)
        return {"ticks": len(seen)}

    schedule.register(schedule.Job(name="test.tick", every=timedelta(hours=1), run=tick))
    yield seen
    schedule._JOBS.clear()
    schedule._JOBS.update(saved)


def test_a_new_job_is_due_at_once_then_once_per_period(db: Any, calls: list[datetime]) -> None:
    assert schedule.run_due() == {"test.tick": {"ticks": 1}}
    assert schedule.run_due() == {}  # not due again within the hour, whatever the number of polls
    row = ScheduledJob.objects.get(name="test.tick")
    assert row.last_report == {"ticks": 1} and row.lease_owner == "" and row.last_finished_at is not None
    assert row.next_attempt_at is not None and row.next_attempt_at > timezone.now() + timedelta(minutes=59)
    ScheduledJob.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert schedule.run_due() == {"test.tick": {"ticks": 2}}


def test_a_job_held_by_a_live_worker_is_not_run_twice(db: Any, calls: list[datetime]) -> None:
    schedule.ensure_rows()
    ScheduledJob.objects.filter(name="test.tick").update(lease_owner="other:1:x", lease_until=timezone.now() + timedelta(minutes=5))
    assert schedule.run_due() == {}
    with pytest.raises(RuntimeError, match="running elsewhere"):
        schedule.run_now("test.tick")
    # The other worker died: its lease runs out and the job is taken up again.
    ScheduledJob.objects.filter(name="test.tick").update(lease_until=timezone.now() - timedelta(seconds=1))
    assert schedule.run_due() == {"test.tick": {"ticks": 1}}


def test_a_failing_job_records_the_error_class_not_its_message_and_retries(db: Any) -> None:
    saved = schedule.jobs()

    def broken(now: datetime) -> dict[str, Any]:
        raise ValueError("DURAND Jean 1980-01-01")

    try:
        schedule.register(schedule.Job(name="test.broken", every=timedelta(days=1), run=broken))
        assert schedule.run_due()["test.broken"] is None
        row = ScheduledJob.objects.get(name="test.broken")
        assert row.last_error.startswith("ValueError") and "DURAND" not in row.last_error
        assert row.error_count == 1 and row.lease_owner == ""
        assert row.next_attempt_at is not None and row.next_attempt_at < timezone.now() + timedelta(hours=1)  # backoff, not a day
    finally:
        schedule._JOBS.clear()
        schedule._JOBS.update(saved)


def test_run_job_command_runs_with_a_given_present(db: Any, calls: list[datetime]) -> None:
    out = StringIO()
    call_command("run_job", "test.tick", "--now", "2027-01-02T03:04:05+00:00", stdout=out)
    assert calls == [datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)]
    assert '"ticks": 1' in out.getvalue()
    with pytest.raises(CommandError, match="unknown job"):
        call_command("run_job", "nope")
    with pytest.raises(CommandError, match="--now"):
        call_command("run_job", "test.tick", "--now", "yesterday")


def test_the_schedule_worker_runs_in_run_workers(db: Any, calls: list[datetime]) -> None:
    from relais.core.management.commands.run_workers import WORKERS

    assert WORKERS["schedule"] is schedule.ScheduleWorker
    worker = schedule.ScheduleWorker(batch=0)
    worker.run(once=True)
    assert calls and worker.counts["runs"] == 1
