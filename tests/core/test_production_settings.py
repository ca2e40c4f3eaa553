"""With RELAIS_ENV=production the app refuses to start on a missing, default, exposed or world-readable secret."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
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


# --- Weak configurations that passed before issue 14: each one is refused at start-up (doctor calls each a fail). ---


def _write_secret(env: dict[str, str], name: str, value: str) -> None:
    Path(env[f"{name}_FILE"]).write_text(value)


def _key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_all_zero_master_key_refused(prod_env: dict[str, str]) -> None:
    _write_secret(prod_env, "RELAIS_MASTER_KEY", _key(bytes(32)))
    result = _check(prod_env)
    assert result.returncode != 0 and "RELAIS_MASTER_KEY is all zero bytes" in result.stderr


def test_repeated_byte_blind_index_key_refused(prod_env: dict[str, str]) -> None:
    _write_secret(prod_env, "RELAIS_BLIND_INDEX_KEY", _key(b"A" * 32))
    result = _check(prod_env)
    assert result.returncode != 0 and "RELAIS_BLIND_INDEX_KEY is one character or byte repeated" in result.stderr


def test_repeated_pattern_django_secret_key_refused(prod_env: dict[str, str]) -> None:
    _write_secret(prod_env, "DJANGO_SECRET_KEY", "abcde" * 10)
    result = _check(prod_env)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY is too simple" in result.stderr


def test_secret_key_containing_the_master_key_refused(prod_env: dict[str, str]) -> None:
    master = Path(prod_env["RELAIS_MASTER_KEY_FILE"]).read_text().strip()
    _write_secret(prod_env, "DJANGO_SECRET_KEY", generate_secret("DJANGO_SECRET_KEY") + master)
    result = _check(prod_env)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY contains RELAIS_MASTER_KEY" in result.stderr


@pytest.mark.parametrize("hosts", ["*", "relais.example.org,*", "*.example.org", "."])
def test_wildcard_allowed_hosts_refused(prod_env: dict[str, str], hosts: str) -> None:
    prod_env["RELAIS_ALLOWED_HOSTS"] = hosts
    result = _check(prod_env)
    assert result.returncode != 0 and "RELAIS_ALLOWED_HOSTS must name each host" in result.stderr


def test_group_readable_secret_refused(prod_env: dict[str, str]) -> None:
    Path(prod_env["RELAIS_WEBHOOK_SIGNING_KEY_FILE"]).chmod(0o640)
    result = _check(prod_env)
    assert result.returncode != 0 and "readable or writable by its group" in result.stderr


def test_expired_dcc_signer_certificate_refused(prod_env: dict[str, str], tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    signer = generate_dev_signer(now=datetime.now(UTC) - timedelta(days=400), days=365)
    write_signer(signer, key_file=old / "key.pem", cert_file=old / "cert.pem")
    prod_env["RELAIS_DCC_SIGNER_KEY_FILE"] = str(old / "key.pem")
    prod_env["RELAIS_DCC_SIGNER_CERT_FILE"] = str(old / "cert.pem")
    result = _check(prod_env)
    assert result.returncode != 0 and "DCC signer certificate expired" in result.stderr


def test_secret_symlink_placed_in_static_root_refused(prod_env: dict[str, str], tmp_path: Path) -> None:
    # The link's target is a 0600 file outside every served folder, yet the static server would follow the link.
    static = tmp_path / "var" / "static"
    static.mkdir(parents=True)
    link = static / "master.txt"
    link.symlink_to(prod_env["RELAIS_MASTER_KEY_FILE"])
    prod_env["RELAIS_MASTER_KEY_FILE"] = str(link)
    result = _check(prod_env)
    assert result.returncode != 0 and "inside the served folder" in result.stderr


def test_secret_given_as_a_symlink_refused(prod_env: dict[str, str], tmp_path: Path) -> None:
    link = tmp_path / "blind-index-link"
    link.symlink_to(prod_env["RELAIS_BLIND_INDEX_KEY_FILE"])
    prod_env["RELAIS_BLIND_INDEX_KEY_FILE"] = str(link)
    result = _check(prod_env)
    assert result.returncode != 0 and "is a symbolic link" in result.stderr


def test_dcc_signer_key_symlink_in_static_root_refused(prod_env: dict[str, str], tmp_path: Path) -> None:
    static = tmp_path / "var" / "static"
    static.mkdir(parents=True)
    link = static / "signer.pem"
    link.symlink_to(prod_env["RELAIS_DCC_SIGNER_KEY_FILE"])
    prod_env["RELAIS_DCC_SIGNER_KEY_FILE"] = str(link)
    result = _check(prod_env)
    assert result.returncode != 0 and "inside the served folder" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_secret_owned_by_another_user_refused(prod_env: dict[str, str]) -> None:
    os.chown(prod_env["RELAIS_AUDIT_SIGNING_KEY_FILE"], 65534, 65534)
    result = _check(prod_env)
    assert result.returncode != 0 and "not the service user" in result.stderr
