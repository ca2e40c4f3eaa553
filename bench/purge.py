"""Retention purge over N patients, half of them past retention: generation time, purge time and the JSON report.

Usage: nice .venv/bin/python bench/purge.py [-n 1000000] [--dir DIR] [--batch-size 1000] [--keep]
A fresh SQLite database in DIR (default: a temporary folder) with development secrets. Each patient has one test
(screening, result, acknowledged outbox message); one in ten also has a result link and a sent e-mail notification.
Identities are encrypted beforehand in bare Python (AES-GCM under the retention key of each test's expiry day, one key
per day over 60 days) and written with bulk inserts, counted in the generation time. The purge runs "100 days later"
(--now), so the first half (sampled 92-121 days before) is past retention and the second half (sampled 32-61 days
before) is not; it removes the first half's tests and identities and destroys their days' keys. The floor: a bare
DELETE of the same rows by primary key in batches, on a copy of the generated database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
CHUNK = 20_000


def _prepare(folder: Path) -> None:
    os.environ.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(folder), "DJANGO_SETTINGS_MODULE": "relais.settings"})
    for name in ("DATABASE_URL", "RELAIS_AUDIT_CHECKPOINT_FILE", "RELAIS_AUDIT_CHECKPOINT_COPY", "RELAIS_KEY_DIR"):
        os.environ.pop(name, None)
    subprocess.run([PY, "-m", "relais.core.devsecrets", str(folder / "secrets")], cwd=ROOT, check=True, capture_output=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _generate(n: int) -> tuple[float, Any]:
    from django.db import connection, transaction
    from django.utils import timezone

    from relais.accounts.services import pharmacy_create
    from relais.core import crypto
    from relais.core.fields import Ciphertext
    from relais.notify.models import Notification, NotificationStatus, ResultLink
    from relais.patients.models import Patient
    from relais.screenings.models import Device, Screening, ScreeningResult
    from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED
    from relais.transfer.models import OutboxMessage, TransferStatus

    started = time.perf_counter()
    connection.ensure_connection()
    connection.connection.execute("PRAGMA synchronous=OFF")
    pharmacy = pharmacy_create(
        actor=None, name="Pharmacie du Banc", finess="750000010", address_line="1 rue", postcode="75010", city="Paris"
    )
    device = Device.objects.filter(active=True).first()
    assert device is not None
    real_now = timezone.now()
    purge_now = real_now + timedelta(days=100)
    keys: dict[date, str] = {}
    for offset in range(31):  # the expiry days of both halves' tests
        for half in (0, 1):
            sampled = purge_now - timedelta(days=92 + offset if half == 0 else 32 + offset)
            day = timezone.localdate(sampled + timedelta(days=92))
            if day not in keys:
                with transaction.atomic():
                    keys[day] = crypto.retention_key_id(day)
    table = Patient._meta.db_table

    def enc(key_id: str, column: str, pk: uuid.UUID, value: str) -> Ciphertext:
        return Ciphertext(crypto.encrypt(value, aad=crypto.aad_for(table, column, pk), key_id=key_id))

    for start in range(0, n, CHUNK):
        patients, screenings, results, outbox, links, notes = [], [], [], [], [], []
        for i in range(start, min(n, start + CHUNK)):
            half = 0 if i < n // 2 else 1
            offset = i % 30
            sampled = purge_now - timedelta(days=(92 if half == 0 else 32) + offset, minutes=i % 1440)
            key_id = keys[timezone.localdate(sampled + timedelta(days=92))]
            pk = uuid.uuid4()
            patient = Patient(id=pk, pharmacy_id=pharmacy.pk, retention_key=key_id, name_dob_index=f"{i:064d}", identity_index=f"{i:064d}")
            for column, value in (
                ("last_name", f"NOM-{i}"),
                ("first_names", "Camille"),
                ("sex", "F"),
                ("date_of_birth", "1990-01-01"),
                ("email", f"p{i}@example.org"),
            ):
                setattr(patient, column, enc(key_id, column, pk, value))
            for column in ("nir", "address_line", "postcode", "city", "country", "phone"):
                setattr(patient, column, Ciphertext(""))
            patients.append(patient)
            screening = Screening(
                pharmacy_id=pharmacy.pk,
                patient_id=pk,
                device_id=device.pk,
                specimen_type=DEFAULT_SPECIMEN,
                sampled_at=sampled,
                information_notice_given=True,
                correction_reason=Ciphertext(""),
            )
            screenings.append(screening)
            results.append(
                ScreeningResult(screening_id=screening.pk, analyte="sars-cov-2", loinc_code=device.loinc_code, result=RESULT_NOT_DETECTED)
            )
            outbox.append(
                OutboxMessage(
                    screening_id=screening.pk,
                    series_id=screening.series_id,
                    version=1,
                    pharmacy_id=pharmacy.pk,
                    destination="sandbox",
                    message_format="hl7v2",
                    status=TransferStatus.ACKNOWLEDGED,
                    next_attempt_at=sampled,
                    acknowledged_at=sampled,
                    ack_text="AA",
                )
            )
            if i % 10 == 0:
                link = ResultLink(
                    token_hash=uuid.uuid4().hex * 2,
                    pharmacy_id=pharmacy.pk,
                    patient_id=pk,
                    series_id=screening.series_id,
                    expires_at=sampled + timedelta(days=30),
                )
                links.append(link)
                note_id = uuid.uuid4()
                notes.append(
                    Notification(
                        id=note_id,
                        pharmacy_id=pharmacy.pk,
                        patient_id=pk,
                        screening_id=screening.pk,
                        series_id=screening.series_id,
                        link_id=link.pk,
                        kind="result",
                        channel="email",
                        address=Ciphertext(
                            crypto.encrypt(
                                f"p{i}@example.org", aad=crypto.aad_for(Notification._meta.db_table, "address", note_id), key_id=key_id
                            )
                        ),
                        link_url=Ciphertext(""),
                        status=NotificationStatus.SENT,
                        next_attempt_at=sampled,
                        retention_key=key_id,
                        sent_at=sampled,
                    )
                )
        with transaction.atomic():
            Patient.objects.bulk_create(patients)
            Screening.objects.bulk_create(screenings)
            ScreeningResult.objects.bulk_create(results)
            OutboxMessage.objects.bulk_create(outbox)
            ResultLink.objects.bulk_create(links)
            Notification.objects.bulk_create(notes)
        print(f"  generated {min(n, start + CHUNK):,} / {n:,}", file=sys.stderr, end="\r")
    # Creation times as they would be: each row made when its test was taken (auto_now_add wrote today's).
    with connection.cursor() as cursor:
        cursor.execute("UPDATE notify_notification SET created_at = next_attempt_at")
        cursor.execute("UPDATE notify_resultlink SET created_at = datetime(expires_at, '-30 days')")
        cursor.execute("UPDATE transfer_outboxmessage SET created_at = next_attempt_at")
    connection.connection.execute("PRAGMA synchronous=FULL")
    print(file=sys.stderr)
    return time.perf_counter() - started, purge_now


def _floor(db_file: Path, n: int, batch: int) -> float:
    """Bare DELETEs of the first half's rows by primary key, batch by batch, on a copy."""
    copy = db_file.with_suffix(".floor")
    shutil.copy(db_file, copy)
    raw = sqlite3.connect(copy)
    ids = [row[0] for row in raw.execute("SELECT s.id FROM screenings_screening s ORDER BY s.sampled_at LIMIT ?", (n // 2,))]
    started = time.perf_counter()
    for i in range(0, len(ids), batch):
        chunk = ids[i : i + batch]
        marks = ",".join("?" * len(chunk))
        with raw:
            patients = [r[0] for r in raw.execute(f"SELECT patient_id FROM screenings_screening WHERE id IN ({marks})", chunk)]  # noqa: S608
            pmarks = ",".join("?" * len(patients))
            raw.execute(f"DELETE FROM notify_notification WHERE screening_id IN ({marks})", chunk)  # noqa: S608
            raw.execute(f"DELETE FROM notify_resultlink WHERE patient_id IN ({pmarks})", patients)  # noqa: S608
            raw.execute(f"DELETE FROM transfer_outboxmessage WHERE screening_id IN ({marks})", chunk)  # noqa: S608
            raw.execute(f"DELETE FROM screenings_screeningresult WHERE screening_id IN ({marks})", chunk)  # noqa: S608
            raw.execute(f"DELETE FROM screenings_screening WHERE id IN ({marks})", chunk)  # noqa: S608
            raw.execute(f"DELETE FROM patients_patient WHERE id IN ({pmarks})", patients)  # noqa: S608
    elapsed = time.perf_counter() - started
    raw.close()
    copy.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="relais-bench-purge-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _prepare(folder)
        from django.conf import settings
        from django.db import connection

        from relais.patients.models import Patient
        from relais.retention.services import purge

        generation, purge_now = _generate(args.n)
        print(f"generated {args.n:,} patients in {generation:.1f} s", flush=True)
        db_file = Path(str(settings.DATABASES["default"]["NAME"]))
        connection.close()
        floor = _floor(db_file, args.n, args.batch_size)
        started = time.perf_counter()
        report = purge(now=purge_now, batch_size=args.batch_size, progress=sys.stderr)
        elapsed = time.perf_counter() - started
        left = Patient.objects.count()
        print(json.dumps(report, indent=2, sort_keys=True))
        print(f"purge: {elapsed:.1f} s for {args.n:,} patients ({args.n // 2:,} past retention); {left:,} patients left")
        print(f"floor (bare batched DELETEs of the same rows on a copy): {floor:.1f} s")
        print(f"command: nice .venv/bin/python bench/purge.py -n {args.n} --batch-size {args.batch_size}")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
