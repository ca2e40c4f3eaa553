"""Retention purge over N patients, half of them past retention: generation time, purge time and the JSON report.

Usage: nice .venv/bin/python bench/purge.py [-n 1000000] [--dir DIR] [--batch-size 1000] [--keep]
A fresh SQLite database in DIR (default: a temporary folder) with development secrets. Each patient has one test
(screening, result, acknowledged outbox message); one in ten also has a result link and a sent e-mail notification.
Identities are encrypted beforehand in bare Python (AES-GCM under the retention key of each test's expiry day, one key
per day over 60 days) and written as prepared rows with executemany (SQLite: 4 GB page cache, synchronous OFF, journal
in memory while filling; the purge runs on a fresh connection with the project's WAL and synchronous=FULL), counted in
the generation time. The purge runs "100 days later" (--now), so the first half (sampled 92-121 days before) is past
retention and the second half (sampled 32-61 days before) is not; it removes the first half's tests and identities and
destroys their days' keys. The floor: a bare DELETE of the same rows by primary key in batches, on a copy of the
generated database.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
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


def _template(model: Any, varying: list[str], **constants: Any) -> tuple[str, list[Any], dict[str, int]]:
    """INSERT statement, database values of a row built from ``constants`` (defaults, auto_now_add), and the positions
    of the ``varying`` columns each row fills in: rows go to the database without a model instance each."""
    from django.db import connection

    obj = model(**constants)
    columns, values = [], []
    for f in model._meta.concrete_fields:
        if f.primary_key and not f.has_default():
            continue  # the database numbers the rows
        columns.append(f.column)
        values.append(f.get_db_prep_save(f.pre_save(obj, add=True), connection))
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
    return sql, values, {c: columns.index(c) for c in varying}


def _generate(n: int) -> tuple[float, Any]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from django.db import connection, transaction
    from django.utils import timezone

    from relais.accounts.services import pharmacy_create
    from relais.core import crypto
    from relais.core.fields import Ciphertext
    from relais.notify.models import Notification, NotificationStatus, ResultLink
    from relais.patients.models import Patient
    from relais.screenings.models import Device, Screening, ScreeningResult
    from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED
    from relais.transfer.models import OutboxMessage, TransferStatus, new_message_id

    started = time.perf_counter()
    connection.ensure_connection()
    # A throwaway database being filled: a page cache that holds the random-key indexes, no fsync, no write-ahead log.
    # The purge runs on a fresh connection with the project's settings (WAL, synchronous=FULL, default cache).
    for pragma in ("cache_size = -4194304", "synchronous = OFF", "journal_mode = MEMORY", "temp_store = MEMORY"):
        connection.connection.execute(f"PRAGMA {pragma}")
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
    ciphers = {key_id: AESGCM(crypto._data_key(key_id)) for key_id in keys.values()}

    def enc(key_id: str, table: str, column: str, pk: uuid.UUID, value: str) -> str:
        # crypto.encrypt's format, with one cipher object per key instead of one per value
        nonce = os.urandom(12)
        blob = ciphers[key_id].encrypt(nonce, value.encode(), crypto.aad_for(table, column, pk))
        return f"{crypto.PREFIX}.{key_id}.{base64.b64encode(nonce + blob).decode()}"

    def sql_time(value: datetime) -> str:
        return str(value.astimezone(UTC).replace(tzinfo=None))  # what Django's SQLite backend stores

    blank = Ciphertext("")
    patient_sql, patient_row, p_at = _template(
        Patient,
        ["id", "retention_key", "name_dob_index", "identity_index", "last_name", "first_names", "sex", "date_of_birth", "email"],
        pharmacy_id=pharmacy.pk,
        **{
            c: blank
            for c in (
                "last_name",
                "first_names",
                "sex",
                "date_of_birth",
                "nir",
                "address_line",
                "postcode",
                "city",
                "country",
                "phone",
                "email",
            )
        },
    )
    screening_sql, screening_row, s_at = _template(
        Screening,
        ["id", "series_id", "patient_id", "sampled_at"],
        pharmacy_id=pharmacy.pk,
        device_id=device.pk,
        specimen_type=DEFAULT_SPECIMEN,
        sampled_at=real_now,
        information_notice_given=True,
        correction_reason=blank,
    )
    result_sql, result_row, r_at = _template(
        ScreeningResult, ["screening_id"], analyte="sars-cov-2", loinc_code=device.loinc_code, result=RESULT_NOT_DETECTED
    )
    outbox_sql, outbox_row, o_at = _template(
        OutboxMessage,
        ["id", "message_id", "screening_id", "series_id", "next_attempt_at", "acknowledged_at", "created_at"],
        series_id=uuid.uuid4(),
        version=1,
        pharmacy_id=pharmacy.pk,
        destination="sandbox",
        message_format="hl7v2",
        status=TransferStatus.ACKNOWLEDGED,
        next_attempt_at=real_now,
        ack_text="AA",
    )
    link_sql, link_row, l_at = _template(
        ResultLink,
        ["id", "token_hash", "patient_id", "series_id", "expires_at", "created_at"],
        token_hash="",
        pharmacy_id=pharmacy.pk,
        series_id=uuid.uuid4(),
        expires_at=real_now,
    )
    note_sql, note_row, n_at = _template(
        Notification,
        [
            "id",
            "patient_id",
            "screening_id",
            "series_id",
            "link_id",
            "address",
            "next_attempt_at",
            "retention_key",
            "sent_at",
            "created_at",
        ],
        pharmacy_id=pharmacy.pk,
        series_id=uuid.uuid4(),
        kind="result",
        channel="email",
        address=blank,
        link_url=blank,
        status=NotificationStatus.SENT,
        next_attempt_at=real_now,
    )
    note_table = Notification._meta.db_table
    raw = connection.connection
    for start in range(0, n, CHUNK):
        patients, screenings, results, outbox, links, notes = [], [], [], [], [], []
        for i in range(start, min(n, start + CHUNK)):
            half = 0 if i < n // 2 else 1
            offset = i % 30
            sampled = purge_now - timedelta(days=(92 if half == 0 else 32) + offset, minutes=i % 1440)
            at = sql_time(sampled)
            key_id = keys[timezone.localdate(sampled + timedelta(days=92))]
            pk, screening_pk, series = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            row = patient_row.copy()
            row[p_at["id"]], row[p_at["retention_key"]] = pk.hex, key_id
            row[p_at["name_dob_index"]] = row[p_at["identity_index"]] = f"{i:064d}"
            for column, value in (
                ("last_name", f"NOM-{i}"),
                ("first_names", "Camille"),
                ("sex", "F"),
                ("date_of_birth", "1990-01-01"),
                ("email", f"p{i}@example.org"),
            ):
                row[p_at[column]] = enc(key_id, table, column, pk, value)
            patients.append(row)
            row = screening_row.copy()
            row[s_at["id"]], row[s_at["series_id"]], row[s_at["patient_id"]], row[s_at["sampled_at"]] = (
                screening_pk.hex,
                series.hex,
                pk.hex,
                at,
            )
            screenings.append(row)
            row = result_row.copy()
            row[r_at["screening_id"]] = screening_pk.hex
            results.append(row)
            row = outbox_row.copy()
            for column, value in (
                ("id", uuid.uuid4().hex),
                ("message_id", new_message_id()),
                ("screening_id", screening_pk.hex),
                ("series_id", series.hex),
                ("next_attempt_at", at),
                ("acknowledged_at", at),
                ("created_at", at),  # each row made when its test was taken
            ):
                row[o_at[column]] = value
            outbox.append(row)
            if i % 10 == 0:
                link_pk, note_pk = uuid.uuid4(), uuid.uuid4()
                row = link_row.copy()
                for column, value in (
                    ("id", link_pk.hex),
                    ("token_hash", uuid.uuid4().hex * 2),
                    ("patient_id", pk.hex),
                    ("series_id", series.hex),
                    ("expires_at", sql_time(sampled + timedelta(days=30))),
                    ("created_at", at),
                ):
                    row[l_at[column]] = value
                links.append(row)
                row = note_row.copy()
                for column, value in (
                    ("id", note_pk.hex),
                    ("patient_id", pk.hex),
                    ("screening_id", screening_pk.hex),
                    ("series_id", series.hex),
                    ("link_id", link_pk.hex),
                    ("address", enc(key_id, note_table, "address", note_pk, f"p{i}@example.org")),
                    ("next_attempt_at", at),
                    ("retention_key", key_id),
                    ("sent_at", at),
                    ("created_at", at),
                ):
                    row[n_at[column]] = value
                notes.append(row)
        with transaction.atomic():
            raw.executemany(patient_sql, patients)
            raw.executemany(screening_sql, screenings)
            raw.executemany(result_sql, results)
            raw.executemany(outbox_sql, outbox)
            raw.executemany(link_sql, links)
            raw.executemany(note_sql, notes)
        print(f"  generated {min(n, start + CHUNK):,} / {n:,}", file=sys.stderr, end="\r")
    for pragma in ("journal_mode = WAL", "synchronous = FULL", "cache_size = -2000"):
        connection.connection.execute(f"PRAGMA {pragma}")
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
