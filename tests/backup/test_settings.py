"""Backup settings refused at start-up: a backup key equal to another key, a backup folder inside a served folder, and
backups kept longer than the shortest retention period (they hold the retention keys the purge destroys)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relais.core.secrets import SECRET_NAMES, generate_secret

ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    env.update({"RELAIS_ENV": "test", "RELAIS_VAR_DIR": str(tmp_path / "var")})
    env.update({name: generate_secret(name) for name in SECRET_NAMES})
    env.update(extra)
    code = "import django; django.setup(); from django.conf import settings; print(settings.RELAIS_BACKUP_RETENTION_DAYS)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "relais.settings"}, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"RELAIS_BACKUP_RETENTION_DAYS": "8"}, "shortest retention period (7 days)"),
        ({"RELAIS_BACKUP_RETENTION_DAYS": "0"}, "RELAIS_BACKUP_RETENTION_DAYS must be between 1"),
        ({"RELAIS_BACKUP_DIR": "{var}/static/backups"}, "RELAIS_BACKUP_DIR is inside a served folder"),
        ({"RELAIS_BACKUP_KEY": "{master}"}, "RELAIS_BACKUP_KEY must differ"),
    ],
)
def test_unsafe_backup_settings_refuse_to_start(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    master = generate_secret("RELAIS_MASTER_KEY")
    values = {k: v.format(var=tmp_path / "var", master=master) for k, v in extra.items()}
    result = _start(tmp_path, RELAIS_MASTER_KEY=master, **values)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-1500:]


def test_defaults_start(tmp_path: Path) -> None:
    result = _start(tmp_path)
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == "7"
