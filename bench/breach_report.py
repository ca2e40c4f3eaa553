"""breach_report over a million patients: time for `--all` (every patient held, one draft letter each) and `--account`.

Usage: nice .venv/bin/python bench/breach_report.py [--patients 1000000] [--pharmacies 200] [--keep DIR]
       DATABASE_URL=postgresql://... nice .venv/bin/python bench/breach_report.py   (an empty, throwaway database)

A fresh database (SQLite in a temporary folder unless DATABASE_URL is set; while filling it, a 2 GiB page cache and no
fsync) is migrated, then filled with bulk SQL
(INSERT ... SELECT over a generated series; fake ciphertexts shaped like real ones, `v1.<key id>.<random>`): N patients
spread over the pharmacies, one test and one result each, one `screening.create` audit event per test naming the test
and its patient (AuditSubject rows), and one pharmacist who read every patient of their pharmacy in the window
(`patient.view`) plus reads outside it. The figures are wall times of the management command, in process, drafts
written; generation time is printed too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
sys.path.insert(0, str(ROOT))


def _sql_dialect(vendor: str) -> dict[str, str]:
    if vendor == "postgresql":
        return {
            "uuid": "gen_random_uuid()",
            "cipher": "'v1.dkbench000000000000.' || md5(random()::text) || md5(random()::text)",
            "series": "SELECT g AS n FROM generate_series(0, %(last)s) AS g",
            "text": "CAST({} AS text)",
            "false": "FALSE",
        }
    return {
        "uuid": "lower(hex(randomblob(16)))",
        "cipher": "'v1.dkbench000000000000.' || hex(randomblob(32))",
        "series": "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < %(last)s) SELECT n FROM seq",
        "text": "CAST({} AS text)",
        "false": "0",
    }


def _columns(model: Any, overrides: dict[str, str], sql: dict[str, str], now: str) -> tuple[str, str]:
    """Column list and SELECT expressions: ``overrides`` first, then a neutral value for the field's type."""
    from django.db import models

    from relais.core.fields import EncryptedTextField

    names, values = [], []
    for field in model._meta.concrete_fields:
        column = field.column
        if isinstance(field, models.AutoField | models.BigAutoField):
            continue  # the database numbers the rows
        if column in overrides:
            value = overrides[column]
        elif field.primary_key and isinstance(field, models.UUIDField):
            value = sql["uuid"]
        elif isinstance(field, EncryptedTextField):
            value = sql["cipher"]
        elif field.null:
            value = "NULL"
        elif isinstance(field, models.BooleanField):
            value = sql["false"]
        elif isinstance(field, models.IntegerField | models.BigIntegerField | models.PositiveIntegerField):
            value = "0"
        elif isinstance(field, models.DateTimeField):
            value = now
        elif isinstance(field, models.JSONField):
            value = "'{}'"
        else:
            value = "''"
        names.append(column)
        values.append(value)
    return ", ".join(names), ", ".join(values)


def generate(*, patients: int, pharmacies: int) -> dict[str, Any]:
    from django.db import connection, transaction
    from django.utils import timezone

    from relais.accounts.models import Pharmacy, Role, User
    from relais.audit.models import AuditEvent, AuditSubject
    from relais.patients.models import Patient
    from relais.screenings.models import Device, Screening, ScreeningResult

    sql = _sql_dialect(connection.vendor)
    adapt = connection.ops.adapt_datetimefield_value
    now = timezone.now()
    held_at = now - timedelta(days=30)
    window = (now - timedelta(days=2), now - timedelta(days=1))
    inside = window[0] + timedelta(hours=1)
    outside = window[0] - timedelta(hours=1)

    def q(value: Any) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    if connection.vendor == "sqlite":
        # A throwaway database: a page cache that holds the random-key indexes, and no fsync.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size = -2097152")
            cursor.execute("PRAGMA synchronous = OFF")
    started = time.perf_counter()
    with transaction.atomic():
        device = Device.objects.get_or_create(
            device_id="1232", defaults={"manufacturer": "Bench", "name": "Bench", "loinc_code": "94558-4"}
        )[0]
        shops = [
            Pharmacy(finess=f"9{n:08d}", name=f"Pharmacie Bench {n}", address_line="1 rue", postcode="75001", city="Paris")
            for n in range(pharmacies)
        ]
        Pharmacy.objects.bulk_create(shops)
        reader = User.objects.create_user("reader@bench.example", "violet-tramway-cactus-41", role=Role.PHARMACIST, pharmacy=shops[0])
        staff = User.objects.create_user("staff@bench.example", "violet-tramway-cactus-41", role=Role.PHARMACIST, pharmacy=shops[1])
        pk = (lambda u: q(u.hex)) if not connection.features.has_native_uuid_field else (lambda u: q(u))
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE bench_shop (n INTEGER PRIMARY KEY, id TEXT)")
            cursor.executemany(
                "INSERT INTO bench_shop (n, id) VALUES (%s, %s)",
                [(i, str(s.pk) if connection.features.has_native_uuid_field else s.pk.hex) for i, s in enumerate(shops)],
            )
            shop_id = "CAST(bench_shop.id AS uuid)" if connection.vendor == "postgresql" else "bench_shop.id"
            series = sql["series"] % {"last": patients - 1}
            names, values = _columns(
                Patient,
                {
                    "pharmacy_id": shop_id,
                    "nir_index": "''",
                    "name_dob_index": "''",
                    "identity_index": "''",
                    "created_at": q(adapt(held_at)),
                    "updated_at": q(adapt(held_at)),
                },
                sql,
                q(adapt(held_at)),
            )
            spread = f"FROM ({series}) s JOIN bench_shop ON bench_shop.n = s.n % {pharmacies}"
            cursor.execute(f"INSERT INTO {Patient._meta.db_table} ({names}) SELECT {values} {spread}")
            names, values = _columns(
                Screening,
                {
                    "series_id": sql["uuid"],
                    "version": "1",
                    "is_current": "TRUE" if connection.vendor == "postgresql" else "1",
                    "pharmacy_id": "p.pharmacy_id",
                    "patient_id": "p.id",
                    "device_id": q(device.pk),
                    "specimen_type": "'258500001'",
                    "sampled_at": q(adapt(held_at)),
                    "status": "'final'",
                    "correction_reason": "''",
                    "recorded_at": q(adapt(held_at)),
                },
                sql,
                q(adapt(held_at)),
            )
            cursor.execute(f"INSERT INTO {Screening._meta.db_table} ({names}) SELECT {values} FROM {Patient._meta.db_table} p")  # noqa: S608
            positive = (
                "CASE WHEN abs(random()) % 10 = 0 THEN '260373001' ELSE '260415000' END"
                if connection.vendor != "postgresql"
                else "CASE WHEN random() < 0.1 THEN '260373001' ELSE '260415000' END"
            )
            cursor.execute(
                f"INSERT INTO {ScreeningResult._meta.db_table} (screening_id, analyte, loinc_code, result) "  # noqa: S608
                f"SELECT id, 'sars-cov-2', '94558-4', {positive} FROM {Screening._meta.db_table}"
            )
            events = AuditEvent._meta.db_table
            subjects = AuditSubject._meta.db_table
            for action, source, actor, when, where in (
                ("screening.create", Screening._meta.db_table, staff, held_at, "1=1"),
                ("patient.view", Patient._meta.db_table, reader, inside, f"x.pharmacy_id = {pk(shops[0].pk)}"),
                ("patient.view", Patient._meta.db_table, reader, outside, f"x.pharmacy_id = {pk(shops[2].pk)}"),
            ):
                names, values = _columns(
                    AuditEvent,
                    {
                        "public_id": sql["uuid"],
                        "occurred_at": q(adapt(when)),
                        "actor_id": pk(actor.pk),
                        "actor_label": q(actor.email),
                        "actor_role": "'pharmacist'",
                        "pharmacy_id": "x.pharmacy_id",
                        "action": q(action),
                        "object_type": q(action.split(".")[0]),
                        "object_ids": "'[]'",
                        "request_id": sql["text"].format("x.id"),  # the bench's link from the event to its object
                        "channel": "'web'",
                    },
                    sql,
                    q(adapt(when)),
                )
                cursor.execute(f"INSERT INTO {events} ({names}) SELECT {values} FROM {source} x WHERE {where}")  # noqa: S608
            cast = "CAST(e.request_id AS uuid)" if connection.vendor == "postgresql" else "e.request_id"
            cursor.execute(f"INSERT INTO {subjects} (event_id, object_id) SELECT e.id, {cast} FROM {events} e WHERE e.request_id <> ''")  # noqa: S608
            cursor.execute(
                f"INSERT INTO {subjects} (event_id, object_id) SELECT e.id, s.patient_id FROM {events} e "  # noqa: S608
                f"JOIN {Screening._meta.db_table} s ON {cast} = s.id WHERE e.action = 'screening.create'"
            )
    seconds = time.perf_counter() - started
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
            # The command under test runs with the project's own settings.
            cursor.execute("PRAGMA cache_size = -2000")
            cursor.execute("PRAGMA synchronous = FULL")
    counts = {
        "patients": Patient.objects.count(),
        "screenings": Screening.objects.count(),
        "events": AuditEvent.objects.count(),
        "subjects": AuditSubject.objects.count(),
    }
    return {
        "seconds": seconds,
        "counts": counts,
        "window": window,
        "reader": reader.email,
        "expected_reader": Patient.objects.filter(pharmacy=shops[0]).count(),
    }


def timed(args: list[str]) -> tuple[float, dict[str, Any]]:
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    started = time.perf_counter()
    call_command("breach_report", *args, "--json", stdout=out)
    return time.perf_counter() - started, json.loads(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--pharmacies", type=int, default=200)
    parser.add_argument("--keep", help="use this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        env = {**os.environ, "RELAIS_ENV": "development", "RELAIS_VAR_DIR": folder, "RELAIS_BREACH_DIR": f"{folder}/breach"}
        subprocess.run([PY, "-m", "relais.core.devsecrets", f"{folder}/secrets"], cwd=ROOT, env=env, check=True)
        subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relais.settings")
        import django

        django.setup()
        from django.db import connection

        made = generate(patients=args.patients, pharmacies=args.pharmacies)
        print(f"database: {connection.vendor}; generated {made['counts']} in {made['seconds']:.1f} s")
        since, until = made["window"]
        everything, report_all = timed(["--since", (since - timedelta(days=60)).isoformat(), "--until", until.isoformat(), "--all"])
        print(
            f"breach_report --all: {everything:.1f} s wall ({report_all['seconds']:.1f} s report, the rest drafts and output); "
            f"{report_all['patients']['total']} patients, {report_all['tests']['tests']} tests, "
            f"{report_all['letters']['draft']} draft letters"
        )
        one, report_one = timed(["--since", since.isoformat(), "--until", until.isoformat(), "--account", made["reader"]])
        print(
            f"breach_report --account: {one:.1f} s wall ({report_one['seconds']:.1f} s report); {report_one['patients']['total']} patients "
            f"(expected {made['expected_reader']}), {report_one['events']['total']} events in the window"
        )
        assert report_all["patients"]["total"] == args.patients
        assert report_one["patients"]["total"] == made["expected_reader"]
        print(f"command: nice .venv/bin/python bench/breach_report.py --patients {args.patients} --pharmacies {args.pharmacies}")


if __name__ == "__main__":
    main()
