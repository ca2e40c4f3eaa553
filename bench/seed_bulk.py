"""Fill a Relais database with N patients and M tests fast, as the app would have stored them (for growth figures).

Usage: nice .venv/bin/python bench/seed_bulk.py --var-dir DIR [--patients 1000000] [--tests 1000000] [--finess 750000010]
DIR is the RELAIS_VAR_DIR of a migrated Relais (development settings, SQLite), e.g. the one `bench/run.py` builds.
Rows go to the pharmacy with that FINESS (the benchmark client's own: the worst case for its duplicate lookups).
Each patient has all eleven identity fields encrypted as relais.core.fields does (AES-256-GCM under the retention key of
its latest test's expiry day, associated data table|column|id, ``v1.<key id>.<base64>``; empty fields encrypted too),
its blind indexes computed with the app's key (checked against relais.core.blind_index on the first rows), a NIR for
one patient in two. Tests go round-robin over the patients, sampled over the last 90 days: a screening (with its
encrypted empty correction reason), its result and an acknowledged outbox row each. Not seeded: certificates, result
links, notifications, audit events (their tables only grow by appends and UUID indexes; see docs/performance.md).
Rows are encrypted by worker processes (--jobs, default the core count) and written by this one with executemany,
20,000 per transaction (SQLite: large page cache, synchronous OFF, journal in memory while filling; WAL and FULL
restored after), then ANALYZE.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import multiprocessing
import os
import secrets
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 20_000
PERSONAL = ("last_name", "first_names", "sex", "date_of_birth", "nir", "address_line", "postcode", "city", "country", "phone", "email")
FIRST_NAMES = ("Camille", "Léa", "Lucas", "Chloé", "Hugo", "Inès", "Louis", "Manon", "Jules", "Zoé", "Noah", "Élodie")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Set in the parent before the pool forks: the children inherit them (no Django in the children).
_state: dict[str, Any] = {}


def seed_name(n: int) -> str:
    """Letter-only, distinct, never a name the benchmark posts (those start with BENCH)."""
    out = ""
    for _ in range(5):
        out += LETTERS[n % 26]
        n //= 26
    return "SEED" + out


def _nir(n: int) -> str:
    body = f"{1 + n % 2}{85 + n % 10:02d}{1 + n % 12:02d}75{100 + n % 900:03d}{n % 1000:03d}"
    return body + f"{97 - int(body) % 97:02d}"


def _dob(n: int) -> date:
    return date(1940 + n % 70, 1 + n % 12, 1 + n % 28)


def _sql_time(value: datetime) -> str:
    return str(value.astimezone(UTC).replace(tzinfo=None))  # what Django's SQLite backend stores


def _rows(start: int, stop: int) -> dict[str, list[list[Any]]]:
    """Patients [start, stop) and their tests, as database rows (runs in a worker process)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    s = _state
    ciphers = {key_id: AESGCM(key) for key_id, key in s["keys"].items()}
    blind = s["blind_key"]
    pharmacy = s["pharmacy"]

    def enc(key_id: str, table: str, column: str, pk: str, value: str) -> str:
        nonce = os.urandom(12)
        blob = ciphers[key_id].encrypt(nonce, value.encode(), f"{table}|{column}|{pk}".encode())  # crypto.aad_for
        return f"v1.{key_id}.{base64.b64encode(nonce + blob).decode()}"

    def index(purpose: str, *parts: str) -> str:
        return hmac.new(blind, "\x1f".join([purpose, pharmacy, *parts]).encode(), hashlib.sha256).hexdigest()

    out: dict[str, list[list[Any]]] = {"patients": [], "screenings": [], "results": [], "outbox": []}
    p_row, p_at = s["patient"]
    s_row, s_at = s["screening"]
    r_row, r_at = s["result"]
    o_row, o_at = s["outbox"]
    now, n_tests, n_patients, active = s["now"], s["tests"], s["patients"], s["active"]
    for i in range(start, stop):
        # Tests i, i + N, i + 2N, ... belong to patient i: its identity is encrypted under its latest test's key.
        tests = list(range(i, n_tests, n_patients))
        sampled = [now - timedelta(days=90 * t / max(n_tests, 1), minutes=t % 1440) for t in tests] or [now - timedelta(days=30)]
        key_id = s["day_keys"][(sampled[-1] + timedelta(days=92)).date()]
        pk = uuid.uuid4()
        last, first, dob = seed_name(i), FIRST_NAMES[i % len(FIRST_NAMES)], _dob(i)
        nir = _nir(i) if i % 2 else ""
        plain = {
            "last_name": last,
            "first_names": first,
            "sex": "FM"[i % 2],
            "date_of_birth": dob.isoformat(),
            "nir": nir,
            "address_line": f"{1 + i % 200} rue de la Paix",
            "postcode": f"75{i % 20 + 1:03d}",
            "city": "Paris",
            "country": "FR",
            "phone": f"+336{i % 100_000_000:08d}",
            "email": f"seed{i}@example.org",
        }
        row = p_row.copy()
        pk_text = str(pk)  # the associated data names the row by its UUID's text form
        for column in PERSONAL:
            row[p_at[column]] = enc(key_id, "patients_patient", column, pk_text, plain[column])
        folded_first = s["normalise"](first)
        row[p_at["id"]] = pk.hex
        row[p_at["retention_key"]] = key_id
        row[p_at["nir_index"]] = index("nir", nir) if nir else ""
        row[p_at["name_dob_index"]] = index("name-dob", s["normalise"](last), dob.isoformat())
        row[p_at["identity_index"]] = index("identity", s["normalise"](last), folded_first, dob.isoformat())
        # The patient search's truncated indexes (issue 15): the app's function, so the seeded B-trees are the real ones.
        for column, value in s["search_indexes"](
            pharmacy_id=pharmacy, last_name=last, first_names=first, date_of_birth=dob, phone=plain["phone"]
        ).items():
            row[p_at[column]] = value
        row[p_at["created_at"]] = row[p_at["updated_at"]] = _sql_time(sampled[0])
        out["patients"].append(row)
        for t, when in zip(tests, sampled, strict=True):
            screening, series = uuid.uuid4(), uuid.uuid4()
            at = _sql_time(when)
            row = s_row.copy()
            row[s_at["id"]], row[s_at["series_id"]], row[s_at["patient_id"]] = screening.hex, series.hex, pk.hex
            row[s_at["sampled_at"]] = row[s_at["recorded_at"]] = at
            row[s_at["correction_reason"]] = enc(active, "screenings_screening", "correction_reason", str(screening), "")
            out["screenings"].append(row)
            row = r_row.copy()
            row[r_at["screening_id"]] = screening.hex
            row[r_at["result"]] = "260373001" if t % 10 == 0 else "260415000"
            out["results"].append(row)
            row = o_row.copy()
            row[o_at["id"]], row[o_at["message_id"]] = uuid.uuid4().hex, secrets.token_hex(10)
            row[o_at["screening_id"]], row[o_at["series_id"]] = screening.hex, series.hex
            for column in ("next_attempt_at", "created_at", "sent_at", "acknowledged_at"):
                row[o_at[column]] = at
            out["outbox"].append(row)
    return out


def _template(model: Any, **constants: Any) -> tuple[str, list[Any], dict[str, int]]:
    """INSERT statement for every column Django writes, one row of defaults, and each column's position."""
    from django.db import connection

    obj = model(**constants)
    columns, values = [], []
    for f in model._meta.concrete_fields:
        if f.primary_key and not f.has_default():
            continue  # the database numbers the rows
        columns.append(f.column)
        values.append(f.get_db_prep_save(f.pre_save(obj, add=True), connection))
    sql = f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    return sql, values, {c: i for i, c in enumerate(columns)}


def _setup(var_dir: Path) -> None:
    os.environ.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "relais.settings"})
    for name in ("DATABASE_URL", "RELAIS_KEY_DIR"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(*, patients: int, tests: int, finess: str, jobs: int, progress: bool = True) -> dict[str, float]:
    """Write the rows into the configured database; the figures of the run."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from relais.accounts.models import Pharmacy, User
    from relais.core import blind_index, crypto
    from relais.core.fields import Ciphertext
    from relais.core.secrets import decode_key
    from relais.patients import search
    from relais.patients.models import Patient
    from relais.screenings.models import Device, Screening, ScreeningResult
    from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED
    from relais.transfer.models import OutboxMessage, TransferStatus

    started = time.perf_counter()
    pharmacy = Pharmacy.objects.get(finess=finess)
    device = Device.objects.get(device_id="1232")
    user = User.objects.filter(pharmacy=pharmacy).order_by("date_joined").first()
    now = timezone.now()
    day_keys: dict[date, str] = {}
    for back in range(0, 93):
        day = (now - timedelta(days=back) + timedelta(days=92)).date()
        with transaction.atomic():
            day_keys[day] = crypto.retention_key_id(day)
    with transaction.atomic():
        active = crypto.active_key_id()
    keys = {key_id: crypto._data_key(key_id) for key_id in {*day_keys.values(), active}}
    blank = Ciphertext("")
    p_sql, p_row, p_at = _template(
        Patient, pharmacy_id=pharmacy.pk, created_by_id=getattr(user, "pk", None), **dict.fromkeys(PERSONAL, blank)
    )
    s_sql, s_row, s_at = _template(
        Screening,
        pharmacy_id=pharmacy.pk,
        device_id=device.pk,
        specimen_type=DEFAULT_SPECIMEN,
        sampled_at=now,
        information_notice_given=True,
        correction_reason=blank,
        recorded_by_id=getattr(user, "pk", None),
    )
    r_sql, r_row, r_at = _template(ScreeningResult, analyte="sars-cov-2", loinc_code=device.loinc_code, result=RESULT_NOT_DETECTED)
    o_sql, o_row, o_at = _template(
        OutboxMessage,
        series_id=uuid.uuid4(),
        version=1,
        pharmacy_id=pharmacy.pk,
        destination="sandbox",
        message_format="hl7v2",
        status=TransferStatus.ACKNOWLEDGED,
        next_attempt_at=now,
        attempts=1,
        ack_code="AA",
        ack_text="AA",
    )
    _state.update(
        keys=keys,
        active=active,
        day_keys=day_keys,
        blind_key=decode_key("RELAIS_BLIND_INDEX_KEY", settings.RELAIS_BLIND_INDEX_KEY),
        pharmacy=str(pharmacy.pk),
        patient=(p_row, p_at),
        screening=(s_row, s_at),
        result=(r_row, r_at),
        outbox=(o_row, o_at),
        now=now,
        tests=tests,
        patients=patients,
        normalise=blind_index.normalise_name,
        search_indexes=search.search_indexes,
    )
    # The app's own functions on a first chunk: the seeded indexes are the ones a lookup computes.
    sample = _rows(0, min(patients, 4))["patients"]
    for i, row in enumerate(sample):
        dob = _dob(i)
        assert row[p_at["identity_index"]] == blind_index.identity_index(
            pharmacy_id=pharmacy.pk, last_name=seed_name(i), first_names=FIRST_NAMES[i % len(FIRST_NAMES)], date_of_birth=dob
        )
        assert row[p_at["name_dob_index"]] == blind_index.name_dob_index(pharmacy_id=pharmacy.pk, last_name=seed_name(i), date_of_birth=dob)
        if i % 2:
            assert row[p_at["nir_index"]] == blind_index.nir_index(pharmacy_id=pharmacy.pk, nir=_nir(i))
        pk = uuid.UUID(row[p_at["id"]])
        assert all(row[p_at[c]] for c in ("surname_index", "full_name_index", "birth_date_index", "phone_index"))
        assert crypto.decrypt(row[p_at["last_name"]], aad=crypto.aad_for("patients_patient", "last_name", pk)) == seed_name(i)

    connection.ensure_connection()
    raw = connection.connection
    for pragma in ("cache_size = -2097152", "synchronous = OFF", "journal_mode = MEMORY", "temp_store = MEMORY"):
        raw.execute(f"PRAGMA {pragma}")
    ranges = [(a, min(patients, a + CHUNK)) for a in range(0, patients, CHUNK)]
    written = 0
    fill_started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=max(1, jobs)) as pool:
        for rows in pool.imap(_rows_star, ranges):
            with transaction.atomic():
                raw.executemany(p_sql, rows["patients"])
                raw.executemany(s_sql, rows["screenings"])
                raw.executemany(r_sql, rows["results"])
                raw.executemany(o_sql, rows["outbox"])
            written += len(rows["patients"])
            if progress:
                elapsed = time.perf_counter() - fill_started
                rate = written / elapsed
                bar = "#" * int(30 * written / patients)
                print(
                    f"\r  seeding [{bar:<30}] {written:,}/{patients:,} patients {rate:,.0f}/s, ETA {(patients - written) / rate:.0f} s ",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
    if progress:
        print(file=sys.stderr)
    fill = time.perf_counter() - fill_started
    for pragma in ("journal_mode = WAL", "synchronous = FULL"):
        raw.execute(f"PRAGMA {pragma}")
    analyze_started = time.perf_counter()
    raw.execute("ANALYZE")
    analyze = time.perf_counter() - analyze_started
    raw.execute("PRAGMA cache_size = -2000")
    return {
        "fill_s": fill,
        "analyze_s": analyze,
        "total_s": time.perf_counter() - started,
        "patients_per_s": patients / fill if fill else 0.0,
    }


def _rows_star(bounds: tuple[int, int]) -> dict[str, list[list[Any]]]:
    return _rows(*bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-dir", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--tests", type=int, default=None, help="default: as many as patients")
    parser.add_argument("--finess", default="750000010")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    tests = args.patients if args.tests is None else args.tests
    _setup(args.var_dir)
    figures = seed(patients=args.patients, tests=tests, finess=args.finess, jobs=args.jobs, progress=not args.quiet)
    print(
        f"seeded {args.patients:,} patients and {tests:,} tests in {figures['fill_s']:.1f} s "
        f"({figures['patients_per_s']:,.0f} patients/s), ANALYZE {figures['analyze_s']:.1f} s, {figures['total_s']:.1f} s in all",
        flush=True,
    )
    print(f"command: nice .venv/bin/python bench/seed_bulk.py --var-dir DIR --patients {args.patients} --tests {tests}", flush=True)


if __name__ == "__main__":
    main()
