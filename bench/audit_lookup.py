""" "Who accessed this patient" over N audit events: generation time, then the auditor page's own lookup, timed.

Usage: nice .venv/bin/python bench/audit_lookup.py [-n 10000000] [--dir DIR] [--keep] [--repeat 20]
A fresh SQLite database in DIR (default: a temporary folder) with development secrets. One patient is registered and
tested through the real services (so its tests, result link and messages exist), then N events are written in bulk
(raw executemany, 100,000 per transaction, journal and sync off, secondary indexes dropped during the load and rebuilt
after, all counted in the generation time) with their audit_auditsubject rows: each names a patient among N/30 and,
for one in two, a test; 1 in 50,000 names the measured patient or one of its objects. Then the exact functions the
page /audit/patients/<id>/ calls (relais.oversight.auditlog: patient_in_scope, patient_filters, events_page), timed
cold and warm, with EXPLAIN QUERY PLAN of the index lookup, and a floor: the bare index range on audit_auditsubject.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
ACTIONS = ["patient.view", "screening.view", "patient.search", "screening.pdf", "screening.create", "notification.send"]
BATCH = 100_000


def _prepare(folder: Path) -> None:
    os.environ.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(folder), "DJANGO_SETTINGS_MODULE": "relais.settings"})
    for name in ("DATABASE_URL", "RELAIS_AUDIT_CHECKPOINT_FILE", "RELAIS_AUDIT_CHECKPOINT_COPY"):
        os.environ.pop(name, None)
    subprocess.run([PY, "-m", "relais.core.devsecrets", str(folder / "secrets")], cwd=ROOT, check=True, capture_output=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _world() -> tuple[Any, list[uuid.UUID]]:
    """An auditor, and one patient with a test (result link, message, certificate) recorded through the services."""
    from django.utils import timezone

    from relais.accounts.models import Role, User
    from relais.accounts.services import pharmacy_create
    from relais.core.context import request_context
    from relais.intake.services import screening_record
    from relais.oversight.auditlog import patient_object_ids
    from relais.patients.services import PatientIdentity, patient_register
    from relais.screenings.inputs import ScreeningInput
    from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED

    with request_context(request_id="bench", client_ip="127.0.0.1", channel="bench"):
        pharmacy = pharmacy_create(
            actor=None, name="Pharmacie du Banc", finess="750000010", address_line="1 rue", postcode="75010", city="Paris"
        )
        pharmacist = User.objects.create_user("bench@bench.example", None, role=Role.PHARMACIST, pharmacy=pharmacy)
        auditor = User.objects.create_user("auditor@bench.example", None, role=Role.AUDITOR)
        identity = PatientIdentity(
            last_name="BANC",
            first_names="Camille",
            sex="F",
            date_of_birth=datetime(1990, 1, 2).date(),
            nir="",
            address_line="",
            postcode="",
            city="",
            country="FR",
            phone="",
            email="camille.banc@example.org",
        )
        patient = patient_register(actor=pharmacist, identity=identity)
        data = ScreeningInput(
            device_id="1232",
            specimen_type=DEFAULT_SPECIMEN,
            sampled_at=timezone.now() - timedelta(minutes=10),
            results={"sars-cov-2": RESULT_NOT_DETECTED},
            information_notice_given=True,
        )
        screening_record(actor=pharmacist, patient_id=patient.pk, data=data)
    return auditor, [patient.pk, *[i for i in patient_object_ids(patient.pk) if i != patient.pk]]


def _generate(n: int, targets: list[uuid.UUID]) -> tuple[float, int]:
    from django.db import connection

    rng = random.Random(7)
    patients = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(max(n // 30, 1000))]
    actors = [(uuid.UUID(int=rng.getrandbits(128), version=4).hex, f"pharmacist{i}@bench.example") for i in range(2000)]
    pharmacies = [uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(500)]
    start_time = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(seconds=30_000_000 / max(n, 1))
    started = time.perf_counter()
    connection.ensure_connection()
    raw: Any = connection.connection
    raw.execute("PRAGMA journal_mode=OFF")
    raw.execute("PRAGMA synchronous=OFF")
    raw.execute("PRAGMA cache_size=-1000000")
    tables = ("audit_auditevent", "audit_auditsubject")
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (?, ?)"
    indexes = raw.execute(query, tables).fetchall()
    for name, _ in indexes:
        raw.execute(f'DROP INDEX "{name}"')
    first = raw.execute("SELECT COALESCE(MAX(id), 0) FROM audit_auditevent").fetchone()[0]
    event_sql = (
        "INSERT INTO audit_auditevent (id, public_id, occurred_at, actor_id, actor_label, actor_role, pharmacy_id, action, "
        "object_type, object_ids, detail, request_id, client_ip, channel) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    subject_sql = "INSERT INTO audit_auditsubject (event_id, object_id) VALUES (?, ?)"
    events: list[tuple[Any, ...]] = []
    subjects: list[tuple[int, str]] = []
    hits = 0
    base = rng.getrandbits(64) << 64
    for i in range(1, n + 1):
        pk = first + i
        actor_id, label = actors[rng.randrange(len(actors))]
        if i % 50_000 == 25_000:  # the measured patient, or one of its objects
            named = [targets[hits % len(targets)]]
            hits += 1
        else:
            named = [patients[rng.randrange(len(patients))]]
            if i & 1:
                named.insert(0, uuid.UUID(int=base | i, version=4))  # a test of that patient
        events.append(
            (
                pk,
                f"{(base + i) & ((1 << 128) - 1):032x}",
                (start_time + step * i).strftime("%Y-%m-%d %H:%M:%S.%f"),
                actor_id,
                label,
                "pharmacist",
                pharmacies[rng.randrange(len(pharmacies))],
                ACTIONS[i % len(ACTIONS)],
                "screening" if len(named) > 1 else "patient",
                json.dumps([str(u) for u in named]),
                "{}",
                "bench",
                "203.0.113.7",
                "web",
            )
        )
        subjects.extend((pk, u.hex) for u in named)
        if len(events) >= BATCH or i == n:
            raw.executemany(event_sql, events)
            raw.executemany(subject_sql, subjects)
            raw.commit()
            events, subjects = [], []
            sys.stderr.write(f"\rgenerated {i:,}/{n:,}")
    sys.stderr.write("\nrebuilding indexes\n")
    for _, sql in indexes:
        raw.execute(sql)
    raw.execute("ANALYZE")
    raw.commit()
    return time.perf_counter() - started, hits


def _lookup(auditor: Any, patient_id: uuid.UUID) -> tuple[float, Any]:
    """What the page view does, minus template rendering: scope check, the patient's objects, one page of events."""
    from relais.core.context import request_context
    from relais.oversight import auditlog

    started = time.perf_counter()
    with request_context(request_id="bench", client_ip="127.0.0.1", channel="web"):
        patient = auditlog.patient_in_scope(actor=auditor, patient_id=patient_id)
        page = auditlog.events_page(
            actor=auditor,
            filters=auditlog.patient_filters(patient.id),
            audit_action="audit.patient_view",
            audit_ids=[patient.id],
            scoped=False,
        )
    return time.perf_counter() - started, page


def _floor(object_ids: list[uuid.UUID]) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        marks = ",".join("%s" for _ in object_ids)
        cursor.execute(f"SELECT event_id FROM audit_auditsubject WHERE object_id IN ({marks})", [u.hex for u in object_ids])  # noqa: S608
        cursor.fetchall()
    return time.perf_counter() - started


def _plans(object_ids: list[uuid.UUID]) -> list[str]:
    from django.db import connection

    from relais.audit.models import AuditEvent, AuditSubject

    subject_sql, params = AuditSubject.objects.filter(object_id__in=object_ids).values_list("event_id").query.sql_with_params()
    event_sql, event_params = AuditEvent.objects.filter(id__in=[1, 2, 3]).order_by("-id").query.sql_with_params()
    plans = []
    with connection.cursor() as cursor:
        for sql, p in ((subject_sql, params), (event_sql, event_params)):
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", p)
            plans += [str(row[-1]) for row in cursor.fetchall()]
    return plans


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10_000_000)
    parser.add_argument("--dir", help="folder for the database (created; default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the folder")
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    folder = Path(options.dir) if options.dir else Path(tempfile.mkdtemp(prefix="relais-audit-lookup-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _prepare(folder)
        auditor, targets = _world()
        generation, hits = _generate(options.n, targets)
        size = sum(p.stat().st_size for p in folder.glob("relais.sqlite3*")) / 1e9
        print(f"audit_lookup bench: generated {options.n:,} events (+ their subjects) in {generation:.1f} s ({size:.2f} GB)")
        print("query plan:", " | ".join(_plans(targets)))
        cold, page = _lookup(auditor, targets[0])
        warm = [_lookup(auditor, targets[0])[0] for _ in range(options.repeat)]
        floor = min(_floor(targets) for _ in range(options.repeat))
        print(
            f"who accessed this patient: {page.count:,} events found ({hits:,} planted + those the services wrote), "
            f"first page {len(page.rows)} rows; cold {cold * 1000:.1f} ms, warm median {statistics.median(warm) * 1000:.1f} ms, "
            f"max {max(warm) * 1000:.1f} ms over {options.repeat} runs; floor (bare index range) {floor * 1000:.2f} ms"
        )
        from relais.audit.seal import seal_status

        started = time.perf_counter()
        seal_status()
        print(f"seal status box on the same page (nothing sealed in this database): {(time.perf_counter() - started) * 1000:.1f} ms")
        print(f"command: nice .venv/bin/python bench/audit_lookup.py -n {options.n}")
    finally:
        if options.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
