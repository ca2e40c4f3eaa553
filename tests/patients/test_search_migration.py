"""Migration 0004 on a database that already holds patients, for real (manage.py in a fresh SQLite folder with its own
development secrets): it fills the search indexes from the decrypted identities. Without a usable RELAIS_BLIND_INDEX_KEY
(settings refuse to start on a malformed one, so tests/patients/test_search.py covers that path with override_settings)
the migration leaves them for `manage.py reindex_patients`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="runs manage.py on its own SQLite file")

ROOT = Path(__file__).resolve().parents[2]

REGISTER = """
from relais.accounts.models import Role
from relais.patients.services import patient_register
from tests.factories import identity, make_pharmacy, make_user
owner = make_user("o@test.example", Role.PHARMACIST, make_pharmacy("750000010", "P"))
for last in ("DURAND-TESTEUR", "Lefèvre"):
    patient_register(actor=owner, identity=identity(last_name=last, nir=""))
"""

CHECK = """
from relais.patients import search
from relais.patients.models import Patient
rows = list(Patient.objects.all())
print("rows", len(rows), "empty", sum(not p.surname_index for p in rows), "stale", len(search.stale(rows)))
"""


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_migration_0004_backfills_or_leaves_it_to_reindex_patients(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    env.update({"RELAIS_ENV": "test", "RELAIS_VAR_DIR": str(tmp_path / "var")})
    subprocess.run([sys.executable, "-m", "relais.core.devsecrets", str(tmp_path / "var" / "secrets")], cwd=ROOT, env=env, check=True)
    _manage(env, "migrate", "-v0")
    _manage(env, "shell", "-c", REGISTER)

    # Back to before the search indexes, then forward again: the migration computes them from the decrypted identity.
    _manage(env, "migrate", "patients", "0003", "-v0")
    _manage(env, "migrate", "-v0")
    assert "rows 2 empty 0 stale 0" in _manage(env, "shell", "-c", CHECK)

    # Emptied (as a migration run without the key leaves them): reindex_patients fills them, with its progress bar.
    blank = "from relais.patients.models import Patient; Patient.objects.update(surname_index='')"
    assert "rows 2 empty 2" in _manage(env, "shell", "-c", blank + CHECK)
    assert "2 patient(s) reindexed" in _manage(env, "reindex_patients", "--missing", "--no-progress")
    assert "rows 2 empty 0 stale 0" in _manage(env, "shell", "-c", CHECK)
