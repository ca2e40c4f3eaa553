"""Screenings per second accepted through the batch API and through a CSV file, against a live server on loopback.

Usage: .venv/bin/python bench/intake_throughput.py [--batches 5] [--csv-rows 10000] [--clients 1]
A fresh SQLite database in a temporary folder; gunicorn (2 workers) on a free loopback port; the demo pharmacy;
an API client registered with a new EC key. Batches of 1,000 distinct patients (each with an e-mail address and a
mobile number, so two patient messages are queued per result) are posted one after the other; the rate is results
accepted over the wall time of the POSTs (bodies serialised beforehand). The rows each accepted result must leave
(certificate, outbox row, result link, two notifications, audit events) are counted afterwards. The CSV file is uploaded
through the API and recorded by one `submission_worker`. `bench/run.py` (make bench) drives the same pieces.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
FINESS = "750000010"  # the demo pharmacy
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BATCH = 1000


def name_for(n: int) -> str:
    """Distinct letter-only names (blind indexes ignore digits): BENCH + 5 letters, 11.8 million of them."""
    out = ""
    for _ in range(5):
        out += LETTERS[n % 26]
        n //= 26
    return "BENCH" + out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)  # loopback only
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.loads(response.read())


@dataclass
class App:
    """A migrated Relais in ``folder`` (development settings, SQLite) with the demo pharmacy and one API client."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    client_id: str = ""
    key: Any = None
    server: subprocess.Popen[bytes] | None = None
    base: str = ""

    @property
    def db(self) -> Path:
        return self.folder / "var" / "relais.sqlite3"

    def manage(self, *args: str, timeout: float = 3600) -> str:
        result = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def setup(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
        env.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(self.folder / "var"), "PYTHONDONTWRITEBYTECODE": "1"})
        self.env = env
        subprocess.run([PY, "-m", "relais.core.devsecrets", str(self.folder / "var" / "secrets")], cwd=ROOT, env=env, check=True)
        self.manage("migrate", "--no-input", "-v", "0")
        self.manage("seed_demo")
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = self.folder / "client.pub.pem"
        public.write_bytes(self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.client_id = self.manage("apiclient_create", "--pharmacy", FINESS, "--public-key", str(public), "--name", "bench").split()[-1]

    def start(self, workers: int = 2) -> None:
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.server = subprocess.Popen(
            [GUNICORN, "relais.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "3600"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                _request(f"{self.base}/healthz")
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not answer /healthz within 60 s")

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait()
            self.server = None

    def token(self) -> str:
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": f"{self.base}/api/v1/token", "iat": now, "exp": now + 120}
        claims["jti"] = uuid.uuid4().hex
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": jwt.encode(claims, self.key, algorithm="ES256"),
        }
        body = "&".join(f"{k}={v}" for k, v in form.items()).encode()
        answer = _request(f"{self.base}/api/v1/token", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        return str(answer["access_token"])


def item(n: int, sampled: datetime) -> dict[str, Any]:
    """One test of a new patient with both contacts (an e-mail and an SMS are queued); one in ten positive."""
    return {
        "patient": {
            "last_name": name_for(n),
            "first_names": "Camille",
            "sex": "F",
            "date_of_birth": "1985-03-12",
            "postcode": "75011",
            "email": f"bench{n}@example.org",
            "phone": f"+336{n % 100_000_000:08d}",
        },
        "device_id": "1232",
        "sampled_at": sampled.isoformat(),
        "results": {"sars-cov-2": "260415000" if n % 10 else "260373001"},
        "information_notice_given": True,
    }


@dataclass
class BatchRun:
    accepted: int
    rejected: int
    duplicates: int
    seconds: float
    batch_seconds: list[float]

    @property
    def per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def post_batches(
    app: App,
    *,
    batches: int,
    offset: int,
    size: int = BATCH,
    clients: int = 1,
    label: str = "batch",
    before_each: Callable[[int], None] | None = None,
) -> BatchRun:
    """Post ``batches`` batches of ``size`` new patients (numbered from ``offset``); wall time of the POSTs only.

    ``before_each(index)`` runs before each POST, off the clock (bench/run.py runs the floor's batch there)."""
    auth = {"Authorization": f"Bearer {app.token()}", "Content-Type": "application/json"}
    sampled = datetime.now(UTC) - timedelta(hours=1)
    bodies = [json.dumps({"items": [item(offset + b * size + i, sampled) for i in range(size)]}).encode() for b in range(batches)]
    times: list[float] = []
    totals = {"accepted": 0, "rejected": 0, "duplicates": 0}

    def post(index: int) -> None:
        if before_each is not None:
            before_each(index)
        began = time.perf_counter()
        answer = _request(f"{app.base}/api/v1/screenings/batch", data=bodies[index], headers=auth)
        took = time.perf_counter() - began
        times.append(took)
        for key in totals:
            totals[key] += answer[key]
        print(
            f"  {label} {len(times)}/{batches}: {answer['accepted']} accepted, {answer['duplicates']} duplicates, "
            f"{answer['rejected']} rejected in {took:.2f} s = {answer['accepted'] / took:.0f} results/s",
            flush=True,
        )

    started = time.perf_counter()
    if clients == 1:
        for index in range(batches):
            post(index)
    else:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(post, range(batches)))
    # Alone the POSTs fill the wall time; with the floor in between, their sum does.
    elapsed = sum(times) if before_each is not None else time.perf_counter() - started
    return BatchRun(totals["accepted"], totals["rejected"], totals["duplicates"], elapsed, times)


def row_counts(db: Path) -> dict[str, int]:
    """Rows that recording results leaves (whole database, read-only), and audit events by action."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        counts: dict[str, int] = {}
        for table in (
            "patients_patient",
            "screenings_screening",
            "screenings_screeningresult",
            "certificates_certificate",
            "certificates_certificaterefusal",
            "transfer_outboxmessage",
            "notify_resultlink",
            "notify_notification",
            "audit_auditevent",
            "audit_auditsubject",
        ):
            counts[table] = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
        for action, count in con.execute("SELECT action, COUNT(*) FROM audit_auditevent GROUP BY action"):
            counts[f"audit:{action}"] = count
        return counts
    finally:
        con.close()


def check_effects(before: dict[str, int], after: dict[str, int], accepted: int) -> list[str]:
    """What is missing for ``accepted`` new results with new patients; empty when every effect was written."""
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    expected = {
        "patients_patient": accepted,
        "screenings_screening": accepted,
        "screenings_screeningresult": accepted,
        "certificates_certificate": accepted,
        "transfer_outboxmessage": accepted,
        "notify_resultlink": accepted,
        "notify_notification": 2 * accepted,  # e-mail and SMS
    }
    problems = [
        f"{table}: {delta.get(table, 0)} new rows, {want} expected" for table, want in expected.items() if delta.get(table, 0) != want
    ]
    for action in ("audit:screening.create", "audit:notification.queue"):
        if delta.get(action, 0) < accepted:
            problems.append(f"{action}: {delta.get(action, 0)} events for {accepted} results")
    return problems


def _csv(rows: int, offset: int) -> bytes:
    out = io.StringIO()
    out.write("last_name;first_names;sex;date_of_birth;device_id;specimen;sampled_at;result;information_notice\r\n")
    sampled = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for n in range(offset, offset + rows):
        out.write(f"{name_for(n)};Léa;F;12/03/1985;1232;nasal;{sampled};{'négatif' if n % 10 else 'positif'};oui\r\n")
    return out.getvalue().encode("utf-8")


def _multipart(content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.csv"\r\nContent-Type: text/csv\r\n\r\n'
    return head.encode() + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=5, help="batches of 1,000 screenings")
    parser.add_argument("--csv-rows", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1, help="batches posted at the same time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = App(Path(folder))
        app.setup()
        app.start()
        try:
            before = row_counts(app.db)
            run = post_batches(app, batches=args.batches, offset=0, clients=args.clients)
            print(f"batch API: {run.accepted} screenings accepted in {run.seconds:.1f} s = {run.per_s:.0f} screenings/s", flush=True)
            problems = check_effects(before, row_counts(app.db), run.accepted)
            print("effects: " + ("; ".join(problems) if problems else "every accepted result has its rows"), flush=True)

            auth = {"Authorization": f"Bearer {app.token()}"}
            body, content_type = _multipart(_csv(args.csv_rows, offset=args.batches * BATCH))
            started = time.perf_counter()
            queued = _request(f"{app.base}/api/v1/submissions/csv", data=body, headers={**auth, "Content-Type": content_type})
            upload = time.perf_counter() - started
            app.manage("submission_worker", "--until-empty")
            elapsed = time.perf_counter() - started
            final = _request(f"{app.base}/api/v1/submissions/{queued['submission_id']}", headers=auth)
            print(
                f"CSV: {args.csv_rows} rows checked and queued in {upload:.1f} s; "
                f"{final['accepted']} accepted, {final['rejected']} rejected "
                f"in {elapsed:.1f} s in all = {final['accepted'] / elapsed:.0f} screenings/s (includes worker start-up)",
                flush=True,
            )
        finally:
            app.stop()


if __name__ == "__main__":
    main()
