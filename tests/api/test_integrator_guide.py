"""docs/integrators.md stays true: its two examples run against a live Relais, and it names every error code and CSV column.

The live test starts the sandbox, a transfer worker and gunicorn on a fresh var/ folder (a fresh database on
PostgreSQL runs), seeds the demo pharmacy, registers two API clients (RSA for the curl script, EC for the
Python client) with `manage.py apiclient_create`, then runs examples/curl-quickstart.sh and
examples/relais_client.py as a newcomer would.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relais.accounts.management.commands.seed_demo import DEMO_FINESS
from relais.screenings import csv_import
from tests.transfer.live import Relais, relais_env, start_sandbox

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "integrators.md"
API = ROOT / "relais" / "api"
VIEWS = [API / "api.py", API / "common.py", *sorted((API / "routers").glob("*.py"))]  # the NinjaAPI and its routers
SERVICES = ROOT / "relais" / "api" / "services.py"
CORE_VIEWS = ROOT / "relais" / "core" / "views.py"  # JSON errors for /api/ paths outside django-ninja (404, 413)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TRANSFER = r"(pending|sent|acknowledged|rejected)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _key_files(folder: Path, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> tuple[Path, Path]:
    private = folder / "private.pem"
    public = folder / "public.pem"
    folder.mkdir(parents=True)
    private.write_bytes(
        private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@dataclass
class Client:
    client_id: str
    private_key: Path


@dataclass
class Live:
    base_url: str
    curl: Client
    python: Client


def _postgres_database() -> tuple[str, object]:
    from tests.transfer.test_reliability import _postgres_database

    return _postgres_database()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("integrator")
    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    database_url, drop = _postgres_database() if on_postgres else ("", lambda: None)
    sandbox = start_sandbox(tmp)
    relais: Relais | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        relais = Relais(relais_env(tmp, sandbox, destination="sandbox-mllp-hl7v2", database_url=database_url))
        relais.manage("migrate", "--no-input", "-v", "0")
        relais.manage("seed_demo")
        clients = {}
        keys = {"curl": rsa.generate_private_key(public_exponent=65537, key_size=2048), "python": ec.generate_private_key(ec.SECP256R1())}
        for name, key in keys.items():
            private, public = _key_files(tmp / name, key)
            out = relais.manage("apiclient_create", "--pharmacy", DEMO_FINESS, "--name", f"{name} example", "--public-key", str(public))
            clients[name] = Client(str(uuid.UUID(out.strip())), private)
        relais.start_worker()
        port = _free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "relais.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
            cwd=ROOT,
            env=relais.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/healthz", timeout=1)  # noqa: S310 (loopback)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield Live(base_url, clients["curl"], clients["python"])
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if relais is not None:
            relais.stop_workers()
        sandbox.stop()
        drop()  # type: ignore[operator]


def _run(command: list[str], env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    result = subprocess.run(command, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{command[-1]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("openssl") is None, reason="needs curl and openssl")
def test_curl_quickstart_runs(live: Live) -> None:
    out = _run(
        ["bash", str(ROOT / "examples" / "curl-quickstart.sh")],
        {"BASE_URL": live.base_url, "CLIENT_ID": live.curl.client_id, "KEY": str(live.curl.private_key)},
    )
    assert "token: ok (expires in 600 s)" in out
    assert re.search(rf"^screening_id: {UUID}$", out, re.MULTILINE), out
    assert "outcome: accepted" in out
    assert "screening status: final" in out
    assert re.search(rf"^transfer status: {TRANSFER}$", out, re.MULTILINE), out


def test_python_client_runs(live: Live) -> None:
    out = _run(
        [sys.executable, str(ROOT / "examples" / "relais_client.py")],
        {"RELAIS_URL": live.base_url, "RELAIS_CLIENT_ID": live.python.client_id, "RELAIS_KEY_FILE": str(live.python.private_key)},
    )
    assert "token: ok (ES256" in out
    first = re.search(rf"^screening ({UUID}): accepted \(HTTP 201\)$", out, re.MULTILINE)
    assert first, out
    assert f"same test again: duplicate of {first.group(1)} (HTTP 200)" in out
    assert re.search(rf"^batch {UUID}: done, 2 accepted, 0 duplicates, 1 rejected$", out, re.MULTILINE), out
    assert re.search(rf"^  item 0: accepted {UUID}$", out, re.MULTILINE), out
    assert re.search(r"^  item 2: rejected device: Device 999999 is not in the EU catalogue", out, re.MULTILINE), out
    assert re.search(rf"^status of {first.group(1)}: final, transfer {TRANSFER}$", out, re.MULTILINE), out


def _error_codes() -> set[str]:
    views = "\n".join(path.read_text() for path in VIEWS)
    codes = set(re.findall(r'\berror="([a-z_]+)"', views)) | set(re.findall(r'_error\(\s*\d+,\s*"([a-z_]+)"', views))
    codes |= set(re.findall(r'TokenError\(\s*"([a-z_]+)"', SERVICES.read_text()))
    codes |= set(re.findall(r'"error":\s*"([a-z_]+)"', CORE_VIEWS.read_text()))
    return codes


def test_guide_names_every_error_code_and_csv_column() -> None:
    guide = GUIDE.read_text()
    codes = _error_codes()
    assert {"invalid_request", "unsupported_grant_type", "invalid_client", "idempotency_key_reused", "in_progress"} <= codes
    missing = sorted(code for code in codes if f"`{code}`" not in guide)
    assert not missing, f"docs/integrators.md does not explain these error codes: {missing}"
    columns = [c.name for c in csv_import.COLUMNS]
    missing = [name for name in columns if f"`{name}`" not in guide]
    assert not missing, f"docs/integrators.md does not describe these CSV columns: {missing}"
    rows = [f"| `{c.name}` | {'yes' if c.required else 'no'} | {c.description} | `{c.example}` |" for c in csv_import.COLUMNS]
    stale = [row for row in rows if row not in guide]
    assert not stale, "the CSV column table differs from csv_import.COLUMNS; expected rows:\n" + "\n".join(stale)
    for limit in ("1,000", "2.5 MB", "20 MB", "10,000"):
        assert limit in guide


def test_guide_shows_the_examples_as_they_are() -> None:
    """The code shown inline is the code that the live tests above run."""
    guide = GUIDE.read_text()
    python = (ROOT / "examples" / "relais_client.py").read_text()
    retry_loop = python[python.index("def call(") : python.index('    raise AssertionError("unreachable")')]
    assert retry_loop in guide, "docs/integrators.md shows an outdated copy of call() from examples/relais_client.py"
    script = (ROOT / "examples" / "curl-quickstart.sh").read_text()
    starts = ("b64url() {", "header=$(", "claims=$(", '  "$CLIENT_ID"', "signature=$(")
    signing = [line for line in script.splitlines() if line.startswith(starts)]
    assert len(signing) == 5, signing
    stale = [line for line in signing if line not in guide]
    assert not stale, f"docs/integrators.md shows outdated lines of examples/curl-quickstart.sh: {stale}"
