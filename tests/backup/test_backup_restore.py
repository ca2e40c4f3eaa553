"""manage.py backup then manage.py restore into a FRESH database (a new SQLite file, or a new PostgreSQL database on the
same server): both run as separate installations (processes with the same secrets, their own folders), the source
migrated and seeded with the demo, so what the backup reads is committed as in production. Every table's count, the
audit seal and the patients' identity come back. Damaged files and wrong keys are refused before anything changes."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.audit.seal import seal_pending
from relais.backup import databases, fileformat
from relais.backup.fileformat import read_header
from relais.backup.services import prune_backups
from relais.backup.status import last_backup_at
from relais.core import crypto, schedule
from relais.core.secrets import SECRET_NAMES, generate_secret
from relais.intake.services import screening_record
from relais.patients.services import patient_register
from tests.factories import identity, screening_input

ROOT = Path(__file__).resolve().parents[2]
NAME = "BACKUPTESTNOM"


@pytest.fixture
def setup(owner: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Patients with tests (retention keys, in a key folder of their own), a sealed audit log with a checkpoint file."""
    checkpoints = tmp_path / "checkpoints.jsonl"
    seal = {**settings.RELAIS_AUDIT_SEAL, "files": [str(checkpoints)]}
    crypto.forget_keys()
    with override_settings(RELAIS_BACKUP_DIR=tmp_path / "backups", RELAIS_AUDIT_SEAL=seal, RELAIS_KEY_DIR=tmp_path / "keys"):
        first = patient_register(actor=owner, identity=identity(last_name=NAME))
        screening_record(actor=owner, patient_id=first.pk, data=screening_input())
        seal_pending(checkpoint=True)
        yield {"patient": first, "folder": tmp_path / "backups", "checkpoints": checkpoints, "tmp": tmp_path}
    crypto.forget_keys()


def _backup(**options: Any) -> Path:
    call_command("backup", "--no-progress", **options)
    files = sorted(Path(str(settings.RELAIS_BACKUP_DIR)).glob("*.relaisbackup"))
    assert files
    return files[-1]


def _env(folder: Path, database_url: str | None, **secrets: str) -> dict[str, str]:
    """An installation's environment: the test's secrets (unless overridden), its own folders and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    env["RELAIS_ENV"] = "test"
    env["RELAIS_VAR_DIR"] = str(folder)
    env["RELAIS_KEY_DIR"] = str(folder / "keys")
    env["RELAIS_AUDIT_CHECKPOINT_FILE"] = str(folder / "checkpoints.jsonl")
    env["RELAIS_BACKUP_DIR"] = str(folder / "backups")
    for name in SECRET_NAMES:
        env[name] = secrets.get(name) or getattr(settings, name if name != "DJANGO_SECRET_KEY" else "SECRET_KEY")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@pytest.fixture
def two_databases(db: Any) -> Iterator[tuple[str | None, str | None]]:
    """DATABASE_URLs of two new, empty databases (None, None on SQLite: each installation gets a new file)."""
    if connection.vendor == "sqlite":
        yield None, None
        return
    names = [f"relais_backup_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with databases.pg_connect(dbname="postgres") as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    s = connection.settings_dict
    urls = [f"postgresql://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{name}" for name in names]
    try:
        yield urls[0], urls[1]
    finally:
        with databases.pg_connect(dbname="postgres") as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


SOURCE = """
import json
from django.core.management import call_command
from relais.backup.databases import current_counts
call_command("migrate", verbosity=0)
call_command("seed_demo")
call_command("audit_seal", checkpoint=True)
call_command("backup", no_progress=True)
print("COUNTS", json.dumps(current_counts()))
"""

PROBE = """
import json
from relais.backup.databases import current_counts
from relais.patients.models import Patient
names = sorted((p.last_name, p.first_names, str(p.date_of_birth)) for p in Patient.objects.all())
print("SEEN", json.dumps({"counts": current_counts(), "names": names}))
"""


def _line(output: str, tag: str) -> Any:
    (line,) = [line for line in output.splitlines() if line.startswith(tag + " ")]
    return json.loads(line[len(tag) + 1 :])


def test_backup_then_restore_into_a_fresh_database(two_databases: tuple[str | None, str | None], tmp_path: Path) -> None:
    source_url, target_url = two_databases
    source = _env(tmp_path / "source", source_url)
    made = _manage(source, "shell", "-c", SOURCE)
    assert made.returncode == 0, made.stderr[-3000:]
    expected = _line(made.stdout, "COUNTS")  # after the backup: one more event (backup.create), as the restore adds one
    (path,) = (tmp_path / "source" / "backups").glob("*.relaisbackup")
    assert path.stat().st_mode & 0o777 == 0o600
    data = path.read_bytes()
    assert (tmp_path / "source" / "checkpoints.jsonl").stat().st_size > 0
    clear = ["DURAND-TESTEUR", "Camille", "Pharmacie de la Gare", "750000010", "demo.relais", "SQLite format", "PGDMP"]
    for text in clear:
        assert text.encode() not in data, text
    assert not [p for p in (tmp_path / "source" / "backups").iterdir() if p != path], "no work folder or copy left behind"

    target = _env(tmp_path / "target", target_url)
    wrong = _env(tmp_path / "target", target_url, RELAIS_MASTER_KEY=generate_secret("RELAIS_MASTER_KEY"))
    refused = _manage(wrong, "restore", str(path), "--no-progress")
    assert refused.returncode != 0 and "master key id" in refused.stderr, refused.stderr[-2000:]
    assert not (tmp_path / "target" / "keys").exists() or not list((tmp_path / "target" / "keys").iterdir())

    restored = _manage(target, "restore", str(path), "--json", "--no-progress")
    assert restored.returncode == 0, restored.stderr[-3000:] + restored.stdout
    report = json.loads(restored.stdout)
    assert report["ok"] and report["seal_ok"] and report["count_mismatches"] == {}, report
    assert report["patients_checked"] >= 1 and report["patients_failed"] == 0
    assert report["keys_written"] >= 1 and report["checkpoint_files_written"] == 1
    assert (tmp_path / "target" / "checkpoints.jsonl").read_bytes() == (tmp_path / "source" / "checkpoints.jsonl").read_bytes()
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "target" / "keys").iterdir())

    probe = _manage(target, "shell", "-c", PROBE)
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = _line(probe.stdout, "SEEN")
    assert any(name[:2] == ["DURAND-TESTEUR", "Camille"] for name in seen["names"]), "identity decrypts"
    assert seen["counts"] == expected  # every table, row for row (each side wrote one audit event since)
    assert report["backend"] == connection.vendor
    again = _manage(target, "restore", str(path), "--no-progress")
    assert again.returncode != 0 and "--yes" in again.stderr
    replaced = _manage(target, "restore", str(path), "--yes", "--json", "--no-progress")  # over a database holding data
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert json.loads(replaced.stdout)["ok"]


def _refused(path: Path, match: str, setup: dict[str, Any], **overrides: Any) -> None:
    before = databases.current_counts()
    keys = sorted(p.name for p in Path(settings.RELAIS_KEY_DIR).glob("*.secret"))
    checkpoints = setup["checkpoints"].read_bytes()
    with override_settings(**overrides), pytest.raises(CommandError, match=match) as caught:
        call_command("restore", str(path), "--yes", "--no-progress")
    assert NAME not in str(caught.value)
    assert databases.current_counts() == before
    assert sorted(p.name for p in Path(settings.RELAIS_KEY_DIR).glob("*.secret")) == keys
    assert setup["checkpoints"].read_bytes() == checkpoints


def _frames(data: bytes) -> tuple[bytes, list[bytes]]:
    handle = io.BytesIO(data)
    read_header(handle)
    head, chunks = data[: handle.tell()], []
    while prefix := handle.read(4):
        chunks.append(prefix + handle.read(struct.unpack(">I", prefix)[0]))
    return head, chunks


def test_damaged_files_and_a_wrong_key_are_refused_and_change_nothing(setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fileformat, "CHUNK_SIZE", 16 * 1024)  # several chunks even for a small test database
    path = _backup()
    data = path.read_bytes()
    head, chunks = _frames(data)
    assert len(chunks) > 4
    damaged = setup["tmp"] / "damaged.relaisbackup"

    tampered = bytearray(data)
    tampered[len(head) + len(chunks[0]) + 40] ^= 0x01
    damaged.write_bytes(bytes(tampered))
    _refused(damaged, r"chunk 1 does not authenticate.*nothing was changed", setup)

    damaged.write_bytes(head + b"".join(chunks[:-1]))
    _refused(damaged, "truncated", setup)
    damaged.write_bytes(data[: len(data) // 2])
    _refused(damaged, "truncated", setup)

    swapped = chunks[:]
    swapped[1], swapped[2] = swapped[2], swapped[1]
    damaged.write_bytes(head + b"".join(swapped))
    _refused(damaged, "chunk 1 does not authenticate", setup)

    header_changed = bytearray(data)
    header_changed[len(head) - 5] ^= 0x01  # inside the JSON: the salt
    damaged.write_bytes(bytes(header_changed))
    _refused(damaged, "does not authenticate|header", setup)

    other_key = generate_secret("RELAIS_BACKUP_KEY")
    wanted = read_header(path.open("rb")).key_id
    _refused(
        path,
        f"another backup key \\(key id {wanted}; RELAIS_BACKUP_KEY here has key id [0-9a-f]{{16}}\\)",
        setup,
        RELAIS_BACKUP_KEY=other_key,
    )


def test_a_database_holding_data_is_not_overwritten_without_yes(setup: dict[str, Any]) -> None:
    path = _backup()
    before = databases.current_counts()
    with pytest.raises(CommandError, match=r"already holds data.*--yes"):
        call_command("restore", str(path), "--no-progress")
    assert databases.current_counts() == before


def test_prune_deletes_backups_past_their_retention(setup: dict[str, Any]) -> None:
    path = _backup()
    stale = setup["folder"] / ".backup-999-left-by-a-killed-run.tmp"
    stale.write_bytes(b"x")
    os.utime(stale, (0, 0))
    days = settings.RELAIS_BACKUP_RETENTION_DAYS
    call_command("backup", "--prune")  # prunes only: no new backup, and this one is fresh
    assert list(setup["folder"].glob("*.relaisbackup")) == [path]
    assert prune_backups(now=timezone.now() + timedelta(days=days) - timedelta(hours=1)) == []
    assert path.exists() and not stale.exists()
    assert prune_backups(now=timezone.now() + timedelta(days=days, hours=1)) == [path]
    assert not path.exists() and last_backup_at() is None
    assert AuditEvent.objects.filter(action="backup.prune").count() == 1
    assert schedule.jobs()["backup.prune"].every == timedelta(days=1)  # pruned daily even when no backup runs
    assert schedule.jobs()["backup.prune"].run(timezone.now()) == {"deleted": 0}


def test_backup_output_refused_inside_a_served_folder(setup: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match="served folder"):
        call_command("backup", "--no-progress", output=Path(settings.STATIC_ROOT) / "x.relaisbackup")


def test_last_backup_at_ignores_other_keys_and_other_files(setup: dict[str, Any]) -> None:
    assert last_backup_at() is None
    path = _backup()
    (setup["folder"] / "notes.relaisbackup").write_text("not a backup")
    assert last_backup_at() == read_header(path.open("rb")).created_at
    with override_settings(RELAIS_BACKUP_KEY=generate_secret("RELAIS_BACKUP_KEY")):
        assert last_backup_at() is None
