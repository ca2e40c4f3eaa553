"""With RELAIS_ENV=production the app refuses to start on a missing, default, exposed or world-readable secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relais.certificates.keys import generate_dev_signer, write_signer
from relais.core.secrets import SECRET_NAMES, generate_secret

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prod_env(tmp_path: Path) -> dict[str, str]:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    env.update({"RELAIS_ENV": "production", "RELAIS_VAR_DIR": str(tmp_path / "var"), "RELAIS_ALLOWED_HOSTS": "relais.example.org"})
    for name in SECRET_NAMES:
        path = secrets_dir / name.lower()
        path.write_text(generate_secret(name))
        path.chmod(0o600)
        env[f"{name}_FILE"] = str(path)
    write_signer(generate_dev_signer(), key_file=secrets_dir / "dcc-key.pem", cert_file=secrets_dir / "dcc-cert.pem")
    env["RELAIS_DCC_SIGNER_KEY_FILE"] = str(secrets_dir / "dcc-key.pem")
    env["RELAIS_DCC_SIGNER_CERT_FILE"] = str(secrets_dir / "dcc-cert.pem")
    env["RELAIS_PUBLIC_URL"] = "https://relais.example.org"
    return env


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_safe_secrets(prod_env: dict[str, str]) -> None:
    result = _check(prod_env)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_missing_secret_refused(prod_env: dict[str, str]) -> None:
    del prod_env["RELAIS_MASTER_KEY_FILE"]
    result = _check(prod_env)
    assert result.returncode != 0
    assert "RELAIS_MASTER_KEY is missing" in result.stderr


def test_default_secret_refused(prod_env: dict[str, str]) -> None:
    del prod_env["DJANGO_SECRET_KEY_FILE"]
    prod_env["DJANGO_SECRET_KEY"] = "django-insecure-" + "x" * 60
    result = _check(prod_env)
    assert result.returncode != 0 and "default" in result.stderr


def test_world_readable_secret_refused(prod_env: dict[str, str]) -> None:
    Path(prod_env["RELAIS_BLIND_INDEX_KEY_FILE"]).chmod(0o644)
    result = _check(prod_env)
    assert result.returncode != 0 and "world-readable" in result.stderr


def test_secret_inside_a_served_folder_refused(prod_env: dict[str, str], tmp_path: Path) -> None:
    static = tmp_path / "var" / "static"
    static.mkdir(parents=True)
    exposed = static / "key"
    exposed.write_text(Path(prod_env["RELAIS_MASTER_KEY_FILE"]).read_text())
    exposed.chmod(0o600)
    prod_env["RELAIS_MASTER_KEY_FILE"] = str(exposed)
    result = _check(prod_env)
    assert result.returncode != 0 and "served folder" in result.stderr


def test_same_key_for_two_purposes_refused(prod_env: dict[str, str]) -> None:
    prod_env["RELAIS_BLIND_INDEX_KEY_FILE"] = prod_env["RELAIS_MASTER_KEY_FILE"]
    result = _check(prod_env)
    assert result.returncode != 0 and "must differ" in result.stderr


def test_production_cookies_and_headers(prod_env: dict[str, str]) -> None:
    code = (
        "import django;django.setup();from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SESSION_COOKIE_NAME, s.SECURE_HSTS_SECONDS, s.DEBUG)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**prod_env, "DJANGO_SETTINGS_MODULE": "relais.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["True", "True", "True", "__Host-relais_session", "63072000", "False"], result.stderr


def test_missing_or_exposed_dcc_signer_refused(prod_env: dict[str, str]) -> None:
    key_file = prod_env.pop("RELAIS_DCC_SIGNER_KEY_FILE")
    result = _check(prod_env)
    assert result.returncode != 0 and "RELAIS_DCC_SIGNER_KEY_FILE is missing" in result.stderr
    prod_env["RELAIS_DCC_SIGNER_KEY_FILE"] = key_file
    Path(key_file).chmod(0o644)
    result = _check(prod_env)
    assert result.returncode != 0 and "chmod 600" in result.stderr


def test_plain_http_public_address_refused(prod_env: dict[str, str]) -> None:
    prod_env["RELAIS_PUBLIC_URL"] = "http://relais.example.org"
    result = _check(prod_env)
    assert result.returncode != 0 and "RELAIS_PUBLIC_URL" in result.stderr
