"""Production logs are one JSON object a line: ts, level, logger, message, request_id; tokens redacted, no personal data."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from relais.certificates.keys import generate_dev_signer, write_signer
from relais.core.context import request_context
from relais.core.logging import JsonFormatter, RequestContextFilter
from relais.core.secrets import SECRET_NAMES, generate_secret

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"ts", "level", "logger", "message", "request_id"}
NIR = "294037512000591"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every log record, formatted as production formats it (the settings' filter, then the JSON formatter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_a_line_carries_the_request_id_and_only_the_known_keys(json_lines: io.StringIO) -> None:
    log = logging.getLogger("relais.test")
    with request_context(request_id="abc123"):
        log.warning("Not Found: %s", "/r/SeCrEtToKeN0123456789\nFORGED line", extra={"patient_nir": NIR})
    [record] = _records(json_lines)
    assert set(record) == KEYS  # the extra= value is not written
    assert record["request_id"] == "abc123" and record["level"] == "WARNING" and record["logger"] == "relais.test"
    assert record["message"] == "Not Found: /r/[link]\\x0aFORGED line"
    assert str(record["ts"]).endswith("Z")
    assert NIR not in json_lines.getvalue() and "SeCrEtToKeN" not in json_lines.getvalue()


def test_an_exception_gives_its_class_and_frames_never_its_message(json_lines: io.StringIO) -> None:
    try:
        raise ValueError(f"cannot decrypt patient {NIR} DURAND-TESTEUR")
    except ValueError:
        logging.getLogger("relais.test").exception("decryption failed")
    [record] = _records(json_lines)
    assert record["exc_type"] == "ValueError" and record["message"] == "decryption failed"
    assert any("test_json_logs.py" in frame for frame in record["stack"])  # type: ignore[union-attr]
    assert NIR not in json_lines.getvalue() and "DURAND" not in json_lines.getvalue()


@pytest.mark.django_db
def test_a_request_logs_with_its_own_request_id(json_lines: io.StringIO, client: Client) -> None:
    answer = client.get("/metrics")  # refused: Django logs the 404 with the request's id
    [record] = [r for r in _records(json_lines) if r["logger"] == "django.request"]
    assert record["request_id"] == answer["X-Request-ID"]
    assert record["message"] == "Not Found: /metrics"


def _prod_env(tmp_path: Path) -> dict[str, str]:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL", "PROMETHEUS_"))}
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


_PRODUCTION_SCRIPT = """
import json, logging, os
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "relais.settings"
django.setup()
from django.test import Client, override_settings
from django.test.utils import setup_test_environment
setup_test_environment()
# Pages name their stylesheet through the manifest that collectstatic writes; none was collected here.
override_settings(STORAGES={"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}).enable()
logging.getLogger("relais.check").warning("started")
client = Client()
plain = client.get("/metrics", secure=True, HTTP_HOST="relais.example.org").status_code
empty = client.get("/metrics", secure=True, HTTP_HOST="relais.example.org", HTTP_AUTHORIZATION="Bearer ").status_code
print(json.dumps({"plain": plain, "empty": empty}))
"""


@pytest.mark.skipif(connection.vendor == "postgresql", reason="subprocess on its own SQLite folder: run once, on the SQLite pass")
def test_production_logs_json_and_hides_metrics_without_a_token(tmp_path: Path) -> None:
    env = _prod_env(tmp_path)
    result = subprocess.run([sys.executable, "-c", _PRODUCTION_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"plain": 404, "empty": 404}  # no token configured: nobody
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    started = [line for line in lines if line["logger"] == "relais.check"]
    assert started and set(started[0]) == KEYS and started[0]["message"] == "started"
    assert all(not line.startswith("20") for line in result.stderr.splitlines())  # no plain line left

    secret_key = Path(env["DJANGO_SECRET_KEY_FILE"]).read_text().strip()
    cases = ((secrets.token_urlsafe(18), False), (secret_key, False), (f"metrics-{secret_key}", False), (generate_secret("X"), True))
    for token, ok in cases:  # too short (24 random characters), another secret, holding another secret, good
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env={**env, "RELAIS_METRICS_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (result.returncode == 0) == ok, result.stderr[-500:]
        assert ok or "RELAIS_METRICS_TOKEN" in result.stderr


@pytest.mark.skipif(connection.vendor == "postgresql", reason="subprocess: run once, on the SQLite pass")
def test_log_format_can_be_chosen_outside_production() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
    script = (
        "import os, django, logging; os.environ['DJANGO_SETTINGS_MODULE'] = 'relais.settings'; django.setup();"
        " logging.getLogger('relais.x').info('hi')"
    )
    for log_format, is_json in (("json", True), ("plain", False)):
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**env, "RELAIS_ENV": "test", "RELAIS_LOG_FORMAT": log_format},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        [line] = [line for line in result.stderr.splitlines() if "relais.x" in line]
        assert line.startswith("{") == is_json
    bad = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "RELAIS_ENV": "test", "RELAIS_LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "RELAIS_LOG_FORMAT" in bad.stderr
