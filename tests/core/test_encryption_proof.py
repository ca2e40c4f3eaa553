"""The demo patient's identity never appears in clear anywhere under var/: database, WAL, logs.

A real server runs on a fresh var/ folder, seeded as `make run` does; a staff member logs in
(password + TOTP), lists today's tests, opens the patient and searches by NIR; then every byte
under var/ is scanned, while the server still holds the database open and again after rotation.
"""

from __future__ import annotations

import base64
import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_otp.oath import totp

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NEEDLES = [
    b"DURAND",
    b"TESTEUR",
    b"Durand",
    b"Camille",
    b"CAMILLE",
    b"294037512000591",
    b"2 94 03 75 120 005 91",
    b"94037512000591",
    b"+33612345678",
    b"0612345678",
    b"612345678",
    b"06 12 34 56 78",
    b"camille.durand@example.org",
    b"camille.durand",
]


def _needles() -> list[bytes]:
    variants = set(NEEDLES)
    for needle in NEEDLES:
        variants.add(needle.decode().encode("utf-16-le"))
    return sorted(variants)


def scan(folder: Path) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(folder)}: {n!r}" for n in _needles() if n in data]
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="module")
def env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    env.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(var_dir), "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def server(var_dir: Path, env: dict[str, str]) -> Iterator[str]:
    subprocess.run(
        [sys.executable, "-m", "relais.core.devsecrets", str(var_dir / "secrets")], cwd=ROOT, env=env, check=True, capture_output=True
    )
    _manage(env, "migrate", "--no-input")
    _manage(env, "seed_demo")
    port = _free_port()
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "relais.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def post(self, path: str, data: dict[str, str]) -> str:
        page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token.group(1)}).encode()
        request = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + path})  # noqa: S310
        with self.opener.open(request, timeout=10) as response:
            return response.read().decode()


def test_demo_patient_never_in_clear_under_var(server: str, var_dir: Path, env: dict[str, str]) -> None:
    logins = (var_dir / "demo-logins.txt").read_text()
    password = re.search(r"pharmacien@demo\.relais\.test\s+(\S+)", logins)
    assert password is not None
    browser = Browser(server)
    browser.post("/login/", {"username": "pharmacien@demo.relais.test", "password": password.group(1)})
    enrol = browser.get("/mfa/")
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', enrol)
    assert secret is not None
    key = base64.b32decode(secret.group(1) + "=" * (-len(secret.group(1)) % 8))
    home = browser.post("/mfa/", {"token": f"{totp(key):06d}"})
    assert "DURAND-TESTEUR" in home  # the page shows it: decrypted for an authorised user
    patient_id = re.search(r'href="/patients/([0-9a-f-]{36})/"', home)
    assert patient_id is not None
    assert "camille.durand@example.org" in browser.get(f"/patients/{patient_id.group(1)}/")
    assert "DURAND-TESTEUR" in browser.post("/patients/", {"nir": "2 94 03 75 120 005 91"})

    assert (var_dir / "relais.sqlite3").stat().st_size > 0
    assert (var_dir / "log" / "relais.log").stat().st_size > 0, "the log should record something for the scan to mean anything"
    assert scan(var_dir) == []

    report = _manage(env, "rotate_keys", "--no-progress")
    assert "re-encrypted" in report
    assert scan(var_dir) == []
    check = _manage(env, "shell", "-c", "from relais.patients.models import Patient; print(Patient.objects.get().nir)")
    assert check.strip().splitlines()[-1] == "294037512000591"
