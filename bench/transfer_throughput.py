"""Transfer throughput: messages per second delivered to the sandbox AND acknowledged, per format and backend.

    .venv/bin/python bench/transfer_throughput.py [--messages 10000] [--formats hl7,fhir] [--no-sqlite] [--no-postgres]
                                                  [--pg-port 55441] [--pg-url URL]

Figures (issue 13): HL7 v2.5.1 over MLLP and FHIR R4 over HTTPS (mutual TLS), one transfer worker on SQLite; the same
with one and with two workers on PostgreSQL (a throwaway server started with scripts/pg-test-server on ``--pg-port``,
stopped afterwards if this script started it, or ``--pg-url`` of a server you run). Each figure gets a fresh database
and a fresh sandbox (``python -m sandbox``, log level WARNING, hl7apy / fhir.resources on the first 20 messages and
one in 500, the fast structural validators on the others).

The outbox is seeded directly (bulk inserts, no audit event: the send path is what is measured) with realistic rows:
patients with every identity field encrypted (names in several scripts, HL7 delimiters), one screening each with its
result, 5 % of them corrected (a version 2 whose message waits for its original), one outbox row per version.

Rate = acknowledged messages / (last acknowledged_at - first acknowledged_at), read from the outbox: the workers'
start-up (Django, TLS) is left out; the wall time of the whole drain is printed beside it. Worker CPU per message =
the workers' CPU (rusage of the processes) less that of a worker started on an empty queue, divided by the messages.
Sandbox CPU per message = the growth of its own CPU (getrusage, /control/stats) during the drain, divided likewise.
Every figure checks that nothing was lost or doubled (acknowledged == seeded == stored by the sandbox).

``run(messages=10000, formats=("hl7", "fhir"), sqlite=True, postgres=True, pg_port=55441, pg_url="", log=print)``
returns a dict: ``deliver_hl7_per_s``, ``deliver_fhir_per_s`` (1 worker, SQLite), ``pg_hl7_1w_per_s``,
``pg_hl7_2w_per_s``, ``pg_hl7_2w_over_1w`` (and the same for fhir), and per figure ``<key>_worker_cpu_ms``,
``<key>_sandbox_cpu_ms``, ``<key>_wall_s``, where <key> is ``sqlite_hl7_1w``, ``pg_fhir_2w``, ... bench/run.py calls it;
run alone, the script prints one line per figure and the summary line
``transfer: deliver_hl7_per_s=… deliver_fhir_per_s=… pg_hl7_2w_over_1w=… pg_fhir_2w_over_1w=…``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_TEST_SERVER = str(ROOT / "scripts" / "pg-test-server")
sys.path.insert(0, str(ROOT))

from tests.transfer.live import PY, Relais, Sandbox, relais_env, start_sandbox  # noqa: E402

DESTINATIONS = {"hl7": "sandbox-mllp-hl7v2", "fhir": "sandbox-https-fhir"}
CORRECTED_SHARE = 0.05
# hl7apy / fhir.resources on the first 20 messages and one in 500 (its default, 100 and 1 in 100, is for development:
# 17 ms of hl7apy per sampled message would be 0.3 ms a message of the sandbox's CPU at 10,000 messages).
SANDBOX_SAMPLING = ("--full-validation-first", "20", "--full-validation-every", "500")
LAST_NAMES = ["MARTIN", "LEFÈVRE|PIPE", "O'NEIL^CARET", "GARCIA~TILDE", "Παπαδοπούλου", "Жуковский", "王小明", "محمد", "Nguyễn", "D&AMP"]
FIRST_NAMES = ["Léa", "Hugo", "Chloé", "Zoé", "Jean-Éric", "Anaïs", "Σοφία", "Иван"]


def seed(count: int) -> None:
    """Run inside Django (see _seed): ``count`` outbox messages, 5 % of them corrections waiting for their original."""
    import random
    import uuid
    from datetime import date, timedelta

    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from relais.accounts.models import Role, User
    from relais.accounts.services import pharmacy_create
    from relais.core import crypto
    from relais.patients.models import Patient
    from relais.screenings.models import Screening, ScreeningResult, ScreeningStatus
    from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_DETECTED, RESULT_NOT_DETECTED
    from relais.transfer.models import OutboxMessage

    rng = random.Random(1)
    now = timezone.now()
    corrections = int(count * CORRECTED_SHARE)
    originals = count - corrections
    retention_key = crypto.retention_key_id(timezone.localdate() + timedelta(days=settings.RELAIS_RETENTION["identities"]))
    with transaction.atomic():
        pharmacy = pharmacy_create(
            actor=None, name="Pharmacie de charge", finess="690001235", address_line="2 rue des Essais", postcode="69001", city="Lyon"
        )
        user = User.objects.create_user("bench@relais.test", None, role=Role.PHARMACIST, pharmacy=pharmacy)
    for start in range(0, originals, 2000):
        size = min(2000, originals - start)
        with transaction.atomic():
            patients = [
                Patient(
                    id=uuid.uuid4(),
                    pharmacy=pharmacy,
                    last_name=rng.choice(LAST_NAMES),
                    first_names=rng.choice(FIRST_NAMES),
                    sex=rng.choice("FM"),
                    date_of_birth=date(1950, 1, 1) + timedelta(days=rng.randrange(25000)),  # type: ignore[misc]  # EncryptedDateField takes a date
                    nir="",
                    address_line=f"{rng.randrange(1, 99)} rue de la Gare & du Port",
                    postcode="69001",
                    city="Lyon",
                    country="FR",
                    phone="+33612345678",
                    email="test@example.org",
                    name_dob_index=uuid.uuid4().hex,
                    identity_index=uuid.uuid4().hex,
                    created_by=user,
                    retention_key=retention_key,
                )
                for _ in range(size)
            ]
            Patient.objects.bulk_create(patients)
            screenings = [
                Screening(
                    id=uuid.uuid4(),
                    series_id=uuid.uuid4(),
                    pharmacy=pharmacy,
                    patient=patient,
                    device_id="1232",
                    specimen_type=DEFAULT_SPECIMEN,
                    sampled_at=now - timedelta(minutes=1, seconds=start + i),
                    information_notice_given=True,
                    recorded_by=user,
                )
                for i, patient in enumerate(patients)
            ]
            Screening.objects.bulk_create(screenings)
            ScreeningResult.objects.bulk_create(
                ScreeningResult(
                    screening=s, analyte="sars-cov-2", loinc_code="94558-4", result=rng.choice([RESULT_NOT_DETECTED, RESULT_DETECTED])
                )
                for s in screenings
            )
            outbox = [
                OutboxMessage(screening=s, series_id=s.series_id, version=1, pharmacy=pharmacy, next_attempt_at=now) for s in screenings
            ]
            corrected = screenings[: int(size * corrections / max(1, originals))]
            versions = [
                Screening(
                    id=uuid.uuid4(),
                    series_id=s.series_id,
                    version=2,
                    supersedes=s,
                    pharmacy=pharmacy,
                    patient=s.patient,
                    device_id="1232",
                    specimen_type=DEFAULT_SPECIMEN,
                    sampled_at=s.sampled_at,
                    information_notice_given=True,
                    status=ScreeningStatus.CORRECTED,
                    correction_reason="bench",
                    recorded_by=user,
                )
                for s in corrected
            ]
            Screening.objects.filter(pk__in=[s.pk for s in corrected]).update(is_current=False)
            Screening.objects.bulk_create(versions)
            ScreeningResult.objects.bulk_create(
                ScreeningResult(screening=v, analyte="sars-cov-2", loinc_code="94558-4", result=RESULT_DETECTED) for v in versions
            )
            outbox += [
                OutboxMessage(screening=v, series_id=v.series_id, version=2, pharmacy=pharmacy, next_attempt_at=now) for v in versions
            ]
            OutboxMessage.objects.bulk_create(outbox)
    print(OutboxMessage.objects.count())


def _django(relais: Relais, code: str, timeout: float = 1800) -> str:
    script = f"import django; django.setup(); {code}"
    env = {**relais.env, "DJANGO_SETTINGS_MODULE": "relais.settings"}
    result = subprocess.run([PY, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{code} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _run_workers(relais: Relais, count: int) -> float:
    """Start ``count`` workers at once, each until the queue is empty; their CPU seconds (user + system)."""
    processes = [
        subprocess.Popen(
            [PY, "manage.py", "transfer_worker", "--until-empty"],
            cwd=ROOT,
            env=relais.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    cpu = 0.0
    for process in processes:
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.returncode != 0:
            raise RuntimeError(f"transfer_worker exited {process.returncode}:\n{stderr[-3000:]}")
        cpu += usage.ru_utime + usage.ru_stime
    return cpu


def _ack_window(relais: Relais) -> tuple[int, float]:
    out = _django(
        relais,
        "from django.db.models import Count, Max, Min; from relais.transfer.models import OutboxMessage as M; "
        "a = M.objects.filter(status='acknowledged').aggregate(n=Count('id'), first=Min('acknowledged_at'), last=Max('acknowledged_at')); "
        "print(a['n'], (a['last'] - a['first']).total_seconds() if a['n'] else 0)",
    )
    n, seconds = out.split()
    return int(n), float(seconds)


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its live children and its reaped ones (PostgreSQL: the postmaster and its backends)."""
    tick = os.sysconf("SC_CLK_TCK")

    def fields(path: str) -> list[str]:
        with open(path) as handle:
            return handle.read().rpartition(")")[2].split()

    try:
        own = fields(f"/proc/{pid}/stat")
        total = sum(int(v) for v in own[11:15])  # utime stime cutime cstime
        for entry in os.listdir("/proc"):
            if entry.isdigit() and entry != str(pid):
                try:
                    child = fields(f"/proc/{entry}/stat")
                except OSError:
                    continue
                if child[1] == str(pid):
                    total += int(child[11]) + int(child[12])
    except OSError:
        return 0.0
    return total / tick


def _postmaster_pid(database_url: str) -> int | None:
    """The PostgreSQL server of a scripts/pg-test-server URL (its port names its folder), None for another server."""
    port = database_url.rpartition(":")[2].partition("/")[0]
    try:
        return int(Path(tempfile.gettempdir(), f"relais-pg-test-{port}", "data", "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def measure(fmt: str, *, messages: int, workers: int = 1, database_url: str = "", log: Callable[[str], None] = print) -> dict[str, Any]:
    """One figure: a fresh database and sandbox, ``messages`` seeded, ``workers`` workers drain the queue."""
    postmaster = _postmaster_pid(database_url) if database_url else None
    with tempfile.TemporaryDirectory(prefix="relais-transfer-bench-") as folder:
        tmp = Path(folder)
        sandbox: Sandbox = start_sandbox(tmp, "--log-level", "WARNING", *SANDBOX_SAMPLING)
        try:
            env_extra = {"RELAIS_LOG_LEVEL": "WARNING"}
            relais = Relais(relais_env(tmp, sandbox, destination=DESTINATIONS[fmt], database_url=database_url, **env_extra))
            relais.manage("migrate", "--no-input", timeout=1800)
            idle_cpu = _run_workers(relais, 1)  # start-up and one empty poll, before seeding: subtracted from the figure
            seeded = int(_django(relais, f"from bench.transfer_throughput import seed; seed({messages})").split()[-1])
            before = sandbox.control("/control/stats")
            db_before = _tree_cpu(postmaster) if postmaster else 0.0
            started = time.perf_counter()
            cpu = _run_workers(relais, workers)
            wall = time.perf_counter() - started
            db_cpu = _tree_cpu(postmaster) - db_before if postmaster else 0.0
            after = sandbox.control("/control/stats")
            acknowledged, window = _ack_window(relais)
            stats = relais.stats()
        finally:
            sandbox.stop()
    stored = after["accepted"] - before["accepted"]
    result = {
        "format": fmt,
        "backend": "postgresql" if database_url else "sqlite",
        "workers": workers,
        "messages": seeded,
        "acknowledged": acknowledged,
        "stored": stored,
        "sandbox_duplicates": after["duplicates"],
        "per_s": round((acknowledged - 1) / window, 1) if window > 0 else 0.0,
        "wall_s": round(wall, 2),
        "worker_cpu_ms": round(max(0.0, cpu - workers * idle_cpu) * 1000 / max(1, acknowledged), 3),
        "sandbox_cpu_ms": round((after["cpu_seconds"] - before["cpu_seconds"]) * 1000 / max(1, stored), 3),
        # PostgreSQL's own CPU (postmaster and backends) during the drain; 0 on SQLite, whose work is in the worker's.
        "db_cpu_ms": round(db_cpu * 1000 / max(1, acknowledged), 3),
        "full_validations": {k: after["validation"]["full"][k] - before["validation"]["full"][k] for k in ("hl7v2", "fhir")},
        "by_status": stats["by_status"],
    }
    lost = seeded - acknowledged
    log(
        f"{fmt:<5} {result['backend']:<10} {workers} worker{'s' if workers > 1 else ' '} {acknowledged}/{seeded} acknowledged, "
        f"{stored} stored: {result['per_s']:.0f} msg/s (wall {wall:.1f} s with start-up), worker CPU {result['worker_cpu_ms']:.3f} ms/msg, "
        f"sandbox CPU {result['sandbox_cpu_ms']:.3f} ms/msg"
        + (f", PostgreSQL CPU {result['db_cpu_ms']:.3f} ms/msg" if postmaster else "")
        + f"; lost={lost} duplicates={after['duplicates']}"
    )
    if lost or stored != seeded:
        raise RuntimeError(f"messages lost: {result}")
    return result


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _fresh_database(server_url: str, name: str) -> str:
    import psycopg

    base, _, _ = server_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def run(
    *,
    messages: int = 10_000,
    formats: tuple[str, ...] = ("hl7", "fhir"),
    sqlite: bool = True,
    postgres: bool = True,
    pg_port: int = 55441,
    pg_url: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every figure; see the module docstring for the keys."""
    figures: dict[str, Any] = {}

    def record(key: str, result: dict[str, Any]) -> None:
        figures[key] = result
        for name in ("per_s", "worker_cpu_ms", "sandbox_cpu_ms", "db_cpu_ms", "wall_s"):
            figures[f"{key}_{name}"] = result[name]

    if sqlite:
        for fmt in formats:
            record(f"sqlite_{fmt}_1w", measure(fmt, messages=messages, workers=1, log=log))
            figures[f"deliver_{fmt}_per_s"] = figures[f"sqlite_{fmt}_1w_per_s"]
    if postgres:
        started_here = False
        if not pg_url:
            env = {**os.environ, "RELAIS_PG_TEST_PORT": str(pg_port)}
            started_here = not _port_open(pg_port)
            pg_url = subprocess.run([PG_TEST_SERVER, "start"], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
            pg_url = pg_url.strip()
        try:
            for fmt in formats:
                for workers in (1, 2):
                    url = _fresh_database(pg_url, f"transfer_bench_{fmt}_{workers}")
                    record(f"pg_{fmt}_{workers}w", measure(fmt, messages=messages, workers=workers, database_url=url, log=log))
                one, two = figures[f"pg_{fmt}_1w_per_s"], figures[f"pg_{fmt}_2w_per_s"]
                figures[f"pg_{fmt}_2w_over_1w"] = round(two / one, 2) if one else 0.0
        finally:
            if started_here:
                env = {**os.environ, "RELAIS_PG_TEST_PORT": str(pg_port)}
                subprocess.run([PG_TEST_SERVER, "stop"], cwd=ROOT, env=env, check=False)
    return figures


def summary(figures: dict[str, Any]) -> str:
    keys = ("deliver_hl7_per_s", "deliver_fhir_per_s", "pg_hl7_2w_over_1w", "pg_fhir_2w_over_1w")
    return "transfer: " + " ".join(f"{k}={figures[k]:g}" for k in keys if k in figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--formats", default="hl7,fhir")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--pg-port", type=int, default=55441)
    parser.add_argument("--pg-url", default="")
    parser.add_argument("--json", action="store_true", help="also print every figure as JSON")
    args = parser.parse_args()
    print(
        f"command: {' '.join([Path(sys.executable).name, *sys.argv])}  (cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f})", flush=True
    )
    figures = run(
        messages=args.messages,
        formats=tuple(args.formats.split(",")),
        sqlite=not args.no_sqlite,
        postgres=not args.no_postgres,
        pg_port=args.pg_port,
        pg_url=args.pg_url,
        log=lambda line: print(line, flush=True),
    )
    if args.json:
        print(json.dumps(figures, default=str))
    print(summary(figures), flush=True)


if __name__ == "__main__":
    main()
