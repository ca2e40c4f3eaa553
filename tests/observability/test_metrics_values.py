"""What /metrics says matches the rows: queue depths and ages, delivery latency, rejections and failed messages by
category, audit sealing lag; requests are labelled by URL pattern name; no label carries a patient's identity."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import F
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from relais.audit.seal import seal_pending
from relais.core.queue import MAX_ERRORS, error_summary
from relais.intake.services import screening_record
from relais.notify.channels import _smtp_outcome
from relais.notify.models import Notification, NotificationStatus
from relais.notify.services import IN_DOUBT
from relais.observability.collectors import DatabaseCollector
from relais.observability.exposition import scrape_registry
from relais.observability.multiproc import absorb_dead_process, reset_directory
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome
from relais.transfer.replies import http_rejection
from relais.transfer.services import outbox_claim, outbox_record, outbox_record_error
from relais.transfer.transports import Reply
from tests.factories import screening_input

pytestmark = pytest.mark.django_db
TOKEN = "scrape-" + "t" * 40
ROOT = Path(__file__).resolve().parents[2]
FAMILIES = (
    "relais_http_requests",
    "relais_http_request_duration_seconds",
    "relais_queue_depth",
    "relais_queue_oldest_age_seconds",
    "relais_queue_overdue_seconds",
    "relais_queue_parked",
    "relais_queue_in_flight",
    "relais_transfer_delivery_seconds",
    "relais_transfer_rejected",
    "relais_notification_failures",
    "relais_audit_seal_lag_seconds",
    "relais_audit_unsealed_events",
    "relais_audit_last_checkpoint_age_seconds",
)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> tuple[set[str], Samples]:
    names, samples = set(), {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return names, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when no sample has these labels (a count of nothing is left out)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def _sum(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


@override_settings(RELAIS_METRICS_TOKEN=TOKEN, RELAIS_METRICS_ALLOWED_ADDRESSES=[])
def _scrape(client: Client) -> str:
    answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200
    return str(answer.content.decode())


def _collect(now: Callable[[], datetime]) -> Samples:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(now=now))
    return _parse(generate_latest(registry).decode())[1]


def _record(owner: Any, patient: Any, count: int) -> list[Any]:
    base = timezone.now() - timedelta(hours=1)
    return [
        screening_record(actor=owner, patient_id=patient.pk, data=screening_input(sampled_at=base + timedelta(minutes=i)))
        for i in range(count)
    ]


def _claim(pk: uuid.UUID) -> OutboxMessage:
    # Push every other row back so the claim takes this one.
    OutboxMessage.objects.exclude(pk=pk).filter(status=TransferStatus.PENDING).update(
        next_attempt_at=F("next_attempt_at") + timedelta(days=1)
    )
    [message] = outbox_claim(owner="w", limit=1)
    OutboxMessage.objects.exclude(pk=pk).filter(status=TransferStatus.PENDING).update(
        next_attempt_at=F("next_attempt_at") - timedelta(days=1)
    )
    assert message.pk == pk
    return message


def test_figures_match_the_rows(client: Client, owner: Any, patient: Any) -> None:
    screenings = _record(owner, patient, 7)
    rows = [OutboxMessage.objects.get(screening=s) for s in screenings]
    pending, (ar, http, parked, acked) = rows[:3], rows[3:]
    # The receiver's text names the patient (the worst case): only the category may reach a label.
    outbox_record(
        owner="w", outcomes={_claim(ar.pk): Outcome.rejected("PID-5 DURAND-TESTEUR^Camille 294037512000591 refused", ack_code="AR")}
    )
    outbox_record(
        owner="w", outcomes={_claim(http.pk): http_rejection(Reply('{"issue": [{"diagnostics": "birth date 12/03/1994 wrong"}]}', 422))}
    )
    claimed = _claim(parked.pk)
    OutboxMessage.objects.filter(pk=parked.pk).update(error_count=MAX_ERRORS - 1)
    claimed.error_count = MAX_ERRORS - 1
    assert outbox_record_error(owner="w", message=claimed, error="ValueError in render (hl7v2.py:12): unexpected error, see the worker log")
    outbox_record(owner="w", outcomes={_claim(acked.pk): Outcome.acknowledged("AA")})
    acknowledged_at = OutboxMessage.objects.get(pk=acked.pk).acknowledged_at
    OutboxMessage.objects.filter(pk=acked.pk).update(created_at=acknowledged_at - timedelta(seconds=42))
    OutboxMessage.objects.filter(pk__in=[m.pk for m in pending]).update(created_at=timezone.now() - timedelta(seconds=600))

    # Seven tests, each with an email and an SMS: 14 messages; 5 fail (one of them two days ago), 9 wait.
    mails = list(Notification.objects.filter(channel="email").order_by("created_at"))
    texts = list(Notification.objects.filter(channel="sms").order_by("created_at"))
    refused = _smtp_outcome(smtplib.SMTPRecipientsRefused({"camille.durand@example.org": (550, b"no such user camille.durand")})).detail
    try:
        raise KeyError("+33612345678")
    except KeyError as exc:
        unexpected = error_summary(exc)
    now = timezone.now()
    failures = [
        (mails[0], refused, now),
        (mails[1], IN_DOUBT, now),
        (texts[0], "SMS gateway answered 400: invalid number +33612345678", now),
        (texts[1], unexpected, now),
        (texts[2], "SMS gateway answered 400: old", now - timedelta(days=2)),
    ]
    for notification, error, when in failures:
        Notification.objects.filter(pk=notification.pk).update(status=NotificationStatus.FAILED, failed_at=when, last_error=error)

    text = _scrape(client)
    names, samples = _parse(text)
    assert set(FAMILIES) <= names, set(FAMILIES) - names

    assert _value(samples, "relais_queue_depth", queue="transfer") == 3
    assert _value(samples, "relais_queue_oldest_age_seconds", queue="transfer") >= 600
    assert _value(samples, "relais_queue_parked", queue="transfer") == 1
    assert _value(samples, "relais_queue_in_flight", queue="transfer") == 0
    assert _value(samples, "relais_queue_depth", queue="notifications") == 9
    assert _value(samples, "relais_queue_parked", queue="notifications") == 5

    assert _value(samples, "relais_transfer_rejected", reason="receiver_ar") == 1
    assert _value(samples, "relais_transfer_rejected", reason="receiver_http_4xx") == 1
    assert _value(samples, "relais_transfer_rejected", reason="gave_up_after_errors") == 1
    assert _sum(samples, "relais_transfer_rejected") == 3

    assert _value(samples, "relais_notification_failures", channel="email", reason="mail_address_refused") == 1
    assert _value(samples, "relais_notification_failures", channel="email", reason="in_doubt") == 1
    assert _value(samples, "relais_notification_failures", channel="sms", reason="sms_gateway_refused") == 1  # not the old one
    assert _value(samples, "relais_notification_failures", channel="sms", reason="unexpected_error") == 1
    assert _sum(samples, "relais_notification_failures") == 4

    assert _value(samples, "relais_transfer_delivery_seconds_gcount") == 1
    assert _value(samples, "relais_transfer_delivery_seconds_gsum") == pytest.approx(42, abs=0.5)
    assert _value(samples, "relais_transfer_delivery_seconds_bucket", le="30.0") == 0
    assert _value(samples, "relais_transfer_delivery_seconds_bucket", le="60.0") == 1
    assert _value(samples, "relais_transfer_delivery_seconds_bucket", le="+Inf") == 1
    assert _sum(samples, "relais_metrics_section_errors") == 0

    # No identity anywhere in the exposition, labels included, though the stored texts above quote it.
    lowered = text.lower()
    for value in ("durand", "camille", "294037512000591", "2940375120005", "612345678", "example.org", "12/03/1994", "1994-03-12"):
        assert value not in lowered, value


def test_audit_seal_lag(patient: Any) -> None:
    later = timezone.now() + timedelta(minutes=10)
    samples = _collect(lambda: later)
    assert _value(samples, "relais_audit_unsealed_events") >= 1  # registering the patient was audited, nothing sealed it
    assert _value(samples, "relais_audit_seal_lag_seconds") >= 600
    assert ("relais_audit_last_checkpoint_age_seconds", frozenset()) not in samples  # never signed yet
    seal_pending(checkpoint=True)
    samples = _collect(lambda: later)
    assert _value(samples, "relais_audit_unsealed_events") == 0
    assert _value(samples, "relais_audit_seal_lag_seconds") == 0
    assert 590 <= _value(samples, "relais_audit_last_checkpoint_age_seconds") <= 700


def test_requests_are_counted_by_pattern_name_never_by_path(client: Client) -> None:
    token = "Zq9" + uuid.uuid4().hex
    before = _parse(_scrape(client))[1]
    for _ in range(3):
        client.get(f"/r/{token}")
    client.get("/wp-login.php")
    client.get("/healthz")
    text = _scrape(client)
    after = _parse(text)[1]

    def delta(**labels: str) -> float:
        return _sum(after, "relais_http_requests_total", **labels) - _sum(before, "relais_http_requests_total", **labels)

    assert delta(view="results:open", method="GET") == 3
    assert delta(view="unmatched") == 1
    assert delta(view="healthz", method="GET", status="2xx") == 1
    assert delta(view="observability:metrics", status="2xx") == 1  # the first scrape
    assert _sum(after, "relais_http_request_duration_seconds_count", view="results:open") >= 3
    assert token not in text and "wp-login" not in text


def test_a_broken_section_is_reported_and_the_rest_still_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr("relais.observability.collectors.delivery_latency", broken)
    samples = _collect(timezone.now)
    assert _value(samples, "relais_metrics_section_errors", section="delivery") == 1
    assert _value(samples, "relais_metrics_section_errors", section="queues") == 0
    assert ("relais_queue_depth", frozenset({("queue", "transfer")})) in samples


_CHILD = """
from relais.observability.request_metrics import REQUESTS, LATENCY
REQUESTS.labels(view="healthz", method="GET", status="2xx").inc()
LATENCY.labels(view="healthz").observe(0.02)
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn's workers each write their figures under PROMETHEUS_MULTIPROC_DIR; any one of them answers for all."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = _parse(generate_latest(scrape_registry()).decode())[1]
    assert _value(samples, "relais_http_requests_total", view="healthz", method="GET", status="2xx") == 2
    assert _value(samples, "relais_http_request_duration_seconds_count", view="healthz") == 2
    assert ("relais_queue_depth", frozenset({("queue", "transfer")})) in samples  # the database's figures come along


def test_a_finished_workers_figures_are_folded_into_the_archive(tmp_path: Path) -> None:
    """gunicorn replaces workers: their files are folded into one archive per type, and the totals stay the same."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    pids = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD + "import os; print(os.getpid())"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        )
        pids.append(int(done.stdout.strip()))

    def totals() -> tuple[float, float, float]:
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(tmp_path))
        samples = _parse(generate_latest(registry).decode())[1]
        return (
            _value(samples, "relais_http_requests_total", view="healthz", method="GET", status="2xx"),
            _value(samples, "relais_http_request_duration_seconds_count", view="healthz"),
            _value(samples, "relais_http_request_duration_seconds_bucket", view="healthz", le="0.025"),
        )

    assert totals() == (3, 3, 3)
    assert absorb_dead_process(pids[0], str(tmp_path)) == 2  # its counter and its histogram
    assert absorb_dead_process(pids[1], str(tmp_path)) == 2
    assert absorb_dead_process(pids[1], str(tmp_path)) == 0  # already folded
    assert totals() == (3, 3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["counter_archive.db", "histogram_archive.db", f"counter_{pids[2]}.db", f"histogram_{pids[2]}.db"]
    )
    (tmp_path / "keep.txt").write_text("not ours")
    assert reset_directory(str(tmp_path)) == 4  # a new server run starts from zero; other files are left alone
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
