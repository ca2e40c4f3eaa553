"""Time one /metrics scrape with N outbox rows (default 10,000) in a fresh database.

Usage: nice .venv/bin/python bench/metrics_scrape.py [--rows 10000] [--repeat 20] [--pg-url postgresql://...] [--dir DIR]

A fresh SQLite database in a temporary folder (or, with --pg-url, a fresh database "relais_metrics_bench" on that
server) with development secrets, migrated. One patient and one test are recorded through the real services; then N
outbox rows are written in bulk for that test: 40 % pending (their created_at spread over the last hour), 50 %
acknowledged within the last 15 minutes (the delivery histogram's window) and 10 % rejected with the reasons a receiver
and the worker give; 1,000 failed patient messages. Then GET /metrics with the bearer token through Django's test
client, --repeat times after one warm-up: median, p95 and max milliseconds, and the database sections alone
(relais_metrics_section_seconds from the scrape). Prints the figures as JSON and the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-metrics-token-" + "x" * 32
REASONS = [
    ("AR", "rejected (AR)"),
    ("AE", "segment PID invalid"),
    ("422", "HTTP 422: birth date missing"),
    ("", "a value cannot be coded for the national platform (device)"),
    ("", "gave up after errors: ValueError in render (hl7v2.py:1): unexpected error, see the worker log"),
]


def _fresh_pg(server_url: str, name: str) -> str:
    import psycopg

    base, _, _ = server_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def _prepare(folder: Path, pg_url: str) -> str:
    os.environ.update(
        {
            "RELAIS_ENV": "development",
            "RELAIS_VAR_DIR": str(folder),
            "DJANGO_SETTINGS_MODULE": "relais.settings",
            "RELAIS_METRICS_TOKEN": TOKEN,
            "RELAIS_LOG_LEVEL": "ERROR",
        }
    )
    for name in ("DATABASE_URL", "RELAIS_AUDIT_CHECKPOINT_FILE", "RELAIS_AUDIT_CHECKPOINT_COPY", "PROMETHEUS_MULTIPROC_DIR"):
        os.environ.pop(name, None)
    backend = "sqlite"
    if pg_url:
        os.environ["DATABASE_URL"] = _fresh_pg(pg_url, "relais_metrics_bench")
        backend = "postgresql"
    subprocess.run([sys.executable, "-m", "relais.core.devsecrets", str(folder / "secrets")], cwd=ROOT, check=True, capture_output=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return backend


def _seed(rows: int) -> None:
    from django.utils import timezone

    from relais.accounts.models import Role, User
    from relais.accounts.services import pharmacy_create
    from relais.core.context import request_context
    from relais.intake.services import screening_record
    from relais.notify.models import Notification, NotificationStatus
    from relais.patients.services import PatientIdentity, patient_register
    from relais.screenings.inputs import ScreeningInput
    from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED
    from relais.transfer.models import OutboxMessage, TransferStatus, new_message_id

    now = timezone.now()
    with request_context(request_id="bench", client_ip="127.0.0.1", channel="bench"):
        pharmacy = pharmacy_create(actor=None, name="Bench", finess="750000010", address_line="1 rue", postcode="75010", city="Paris")
        user = User.objects.create_user(
            "bench@example.org", "Bench-password-42!", full_name="Bench", role=Role.PHARMACIST, pharmacy=pharmacy
        )
        identity = PatientIdentity(
            last_name="BENCH",
            first_names="Alex",
            sex="F",
            date_of_birth=now.date().replace(year=1990),
            email="alex@example.org",
            phone="+33612345678",
        )
        patient = patient_register(actor=user, identity=identity)
        screening = screening_record(
            actor=user,
            patient_id=patient.pk,
            data=ScreeningInput(
                device_id="1232",
                specimen_type=DEFAULT_SPECIMEN,
                sampled_at=now - timedelta(minutes=20),
                results={"sars-cov-2": RESULT_NOT_DETECTED},
                information_notice_given=True,
            ),
        )
    built, created = [], []
    for i in range(rows):
        kind = i % 10
        fields: dict[str, Any] = {"status": TransferStatus.PENDING}
        created.append(now - timedelta(seconds=3600 * i / rows))  # pending: spread over the last hour
        if 4 <= kind <= 8:
            created[-1] = now - timedelta(seconds=900)
            fields = {"status": TransferStatus.ACKNOWLEDGED, "acknowledged_at": now - timedelta(seconds=i % 600), "ack_code": "AA"}
        elif kind == 9:
            code, reason = REASONS[i % len(REASONS)]
            fields = {"status": TransferStatus.REJECTED, "rejected_at": now, "ack_code": code, "rejection_reason": reason, "error_count": 5}
        built.append(
            OutboxMessage(
                message_id=new_message_id(),
                screening=screening,
                series_id=screening.series_id,
                version=1,
                pharmacy=pharmacy,
                next_attempt_at=now,
                **fields,
            )
        )
    OutboxMessage.objects.bulk_create(built, batch_size=2000)
    for message, when in zip(built, created, strict=True):  # created_at is auto_now_add: set afterwards
        message.created_at = when
    OutboxMessage.objects.bulk_update(built, ["created_at"], batch_size=2000)
    template = Notification.objects.filter(screening=screening).first()
    if template is not None:
        failed = [
            Notification(
                pharmacy=pharmacy,
                patient=patient,
                screening=screening,
                series_id=screening.series_id,
                link=template.link,
                kind=template.kind,
                channel=template.channel,
                address="alex@example.org",
                status=NotificationStatus.FAILED,
                next_attempt_at=now,
                failed_at=now - timedelta(minutes=i % 600),
                last_error="mail server refused the address (550)" if i % 2 else "SMS gateway answered 400: invalid",
            )
            for i in range(1000)
        ]
        Notification.objects.bulk_create(failed, batch_size=500)


def _scrape_times(repeat: int) -> tuple[list[float], list[float], dict[str, float]]:
    from django.test import Client
    from prometheus_client.parser import text_string_to_metric_families

    client = Client()
    totals: list[float] = []
    database: list[float] = []
    sections: list[dict[str, float]] = []
    for i in range(repeat + 1):
        started = time.perf_counter()
        answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        elapsed = time.perf_counter() - started
        assert answer.status_code == 200, answer.status_code
        if i == 0:
            continue  # warm-up: imports, first connection, statement caches
        totals.append(elapsed * 1000)
        for family in text_string_to_metric_families(answer.content.decode()):
            if family.name == "relais_metrics_section_seconds":
                database.append(sum(sample.value for sample in family.samples) * 1000)
                sections.append({sample.labels["section"]: sample.value * 1000 for sample in family.samples})
    return totals, database, {name: round(statistics.median(s[name] for s in sections), 1) for name in sections[0]}


def _check(rows: int) -> dict[str, float]:
    """The figures the scrape gives for the seeded rows (so the timing is of a scrape that read them)."""
    from django.test import Client
    from prometheus_client.parser import text_string_to_metric_families

    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    wanted = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "relais_queue_depth" and sample.labels.get("queue") == "transfer":
                wanted["transfer_depth"] = sample.value
            if sample.name == "relais_transfer_delivery_seconds_gcount":
                wanted["delivery_sample"] = sample.value
            if sample.name == "relais_transfer_rejected":
                wanted["rejected"] = wanted.get("rejected", 0) + sample.value
            if sample.name == "relais_notification_failures":
                wanted["failed_messages_last_day"] = wanted.get("failed_messages_last_day", 0) + sample.value
    return wanted


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pg-url", default="", help="a PostgreSQL server URL (scripts/pg-test-server start prints one)")
    parser.add_argument("--dir", default="")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="relais-metrics-bench-"))
    backend = _prepare(folder, args.pg_url)
    seeded = time.perf_counter()
    _seed(args.rows)
    seed_seconds = time.perf_counter() - seeded
    totals, database, sections = _scrape_times(args.repeat)
    figures = {
        "backend": backend,
        "outbox_rows": args.rows,
        "seed_seconds": round(seed_seconds, 1),
        "scrapes": len(totals),
        "scrape_ms_median": round(statistics.median(totals), 1),
        "scrape_ms_p95": round(_percentile(totals, 0.95), 1),
        "scrape_ms_max": round(max(totals), 1),
        "database_sections_ms_median": round(statistics.median(database), 1),
        "section_ms_median": sections,
        **_check(args.rows),
    }
    print(json.dumps(figures))
    print("command: nice " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))


if __name__ == "__main__":
    main()
