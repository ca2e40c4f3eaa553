"""Screenings per second accepted through the batch API and through a CSV file, against a live server on loopback.

Usage: .venv/bin/python bench/intake_throughput.py [--batches 5] [--csv-rows 10000]
A fresh SQLite database in a temporary folder; gunicorn (2 workers) on a free loopback port; the demo pharmacy;
an API client registered with a new EC key. Batches of 1,000 distinct patients are posted one after the other; the CSV
file is uploaded through the API and recorded by one `submission_worker`. Each figure is wall time, end to end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
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


def _name(n: int) -> str:
    """Distinct letter-only names (blind indexes ignore digits)."""
    out = ""
    for _ in range(4):
        out += LETTERS[n % 26]
        n //= 26
    return "BENCH" + out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def _request(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)  # loopback only
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def _token(base: str, client_id: str, key: Any) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": f"{base}/api/v1/token", "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt.encode(claims, key, algorithm="ES256"),
    }
    body = "&".join(f"{k}={v}" for k, v in form.items()).encode()
    return str(_request(f"{base}/api/v1/token", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})["access_token"])


def _item(n: int, sampled: datetime) -> dict[str, Any]:
    return {
        "patient": {"last_name": _name(n), "first_names": "Camille", "sex": "F", "date_of_birth": "1985-03-12", "postcode": "75011"},
        "device_id": "1232",
        "sampled_at": sampled.isoformat(),
        "results": {"sars-cov-2": "260415000" if n % 10 else "260373001"},
        "information_notice_given": True,
    }


def _csv(rows: int, offset: int) -> bytes:
    out = io.StringIO()
    out.write("last_name;first_names;sex;date_of_birth;device_id;specimen;sampled_at;result;information_notice\r\n")
    sampled = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for n in range(offset, offset + rows):
        out.write(f"{_name(n)};Léa;F;12/03/1985;1232;nasal;{sampled};{'négatif' if n % 10 else 'positif'};oui\r\n")
    return out.getvalue().encode("utf-8")


def _multipart(content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.csv"\r\nContent-Type: text/csv\r\n\r\n'
    return head.encode() + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=5, help="batches of 1,000 screenings")
    parser.add_argument("--csv-rows", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
        env.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(tmp / "var"), "PYTHONDONTWRITEBYTECODE": "1"})
        subprocess.run([PY, "-m", "relais.core.devsecrets", str(tmp / "var" / "secrets")], cwd=ROOT, env=env, check=True)
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "seed_demo")
        key = ec.generate_private_key(ec.SECP256R1())
        public = tmp / "client.pub.pem"
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        client_id = _manage(env, "apiclient_create", "--pharmacy", FINESS, "--public-key", str(public), "--name", "bench").split()[-1]
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [GUNICORN, "relais.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "600"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    _request(f"{base}/healthz")
                    break
                except OSError:
                    time.sleep(0.2)
            auth = {"Authorization": f"Bearer {_token(base, client_id, key)}", "Content-Type": "application/json"}
            sampled = datetime.now(UTC) - timedelta(hours=1)
            accepted = 0
            started = time.perf_counter()
            for batch in range(args.batches):
                items = [_item(batch * 1000 + i, sampled) for i in range(1000)]
                answer = _request(f"{base}/api/v1/screenings/batch", data=json.dumps({"items": items}).encode(), headers=auth)
                accepted += answer["accepted"]
                print(f"batch {batch + 1}/{args.batches}: {answer['accepted']} accepted, {answer['rejected']} rejected", flush=True)
            elapsed = time.perf_counter() - started
            print(f"batch API: {accepted} screenings accepted in {elapsed:.1f} s = {accepted / elapsed:.0f} screenings/s", flush=True)

            body, content_type = _multipart(_csv(args.csv_rows, offset=args.batches * 1000))
            started = time.perf_counter()
            queued = _request(f"{base}/api/v1/submissions/csv", data=body, headers={**auth, "Content-Type": content_type})
            upload = time.perf_counter() - started
            _manage(env, "submission_worker", "--until-empty")
            elapsed = time.perf_counter() - started
            final = _request(f"{base}/api/v1/submissions/{queued['submission_id']}", headers=auth)
            print(
                f"CSV: {args.csv_rows} rows checked and queued in {upload:.1f} s; "
                f"{final['accepted']} accepted, {final['rejected']} rejected "
                f"in {elapsed:.1f} s in all = {final['accepted'] / elapsed:.0f} screenings/s (includes worker start-up)",
                flush=True,
            )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
