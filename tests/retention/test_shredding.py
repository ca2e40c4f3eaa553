"""Crypto-shredding: a copy of the database taken before the purge cannot decrypt the purged patients afterwards."""

from __future__ import annotations

import sqlite3
import stat
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from relais.core import crypto
from relais.core.models import DataKey
from relais.notify.models import Notification
from relais.patients.models import Patient
from relais.retention.services import purge
from relais.screenings.vocab import RESULT_DETECTED
from tests.retention.helpers import days, new_patient, record_test, settle

KEY_COLUMNS = ["key_id", "wrapped_key", "master_key_id", "created_at", "retired_at", "expires_on"]


def _backup(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What a backup holds: every data key row and the patients' encrypted identity. On SQLite, read from a copy of
    the database written to a file (the test database lives in memory); on PostgreSQL, a dump."""
    queries = {
        "keys": f"SELECT {', '.join(KEY_COLUMNS)} FROM core_datakey",  # noqa: S608 - fixed columns
        "patients": "SELECT id, last_name, email, retention_key FROM patients_patient",
    }
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        (folder / "backup.sqlite3").write_bytes(connection.connection.serialize())  # this connection's view, as committed
        copy = sqlite3.connect(folder / "backup.sqlite3")
        try:
            return {name: copy.execute(sql).fetchall() for name, sql in queries.items()}
        finally:
            copy.close()
    with connection.cursor() as cursor:
        dump = {}
        for name, sql in queries.items():
            cursor.execute(sql)
            dump[name] = cursor.fetchall()
        return dump


def _decrypt_from(backup: dict[str, list[tuple[Any, ...]]], patient_id: uuid.UUID) -> str:
    """Restore the backup's data key rows the live database lost, then decrypt the backup's copy of a last name."""
    for row in backup["keys"]:
        values = dict(zip(KEY_COLUMNS, row, strict=True))
        if not DataKey.objects.filter(key_id=values["key_id"]).exists():
            DataKey.objects.create(**values)
    crypto.forget_keys()
    (token,) = [row[1] for row in backup["patients"] if uuid.UUID(str(row[0])) == patient_id]
    return crypto.decrypt(token, aad=crypto.aad_for("patients_patient", "last_name", patient_id))


def test_backup_taken_before_the_purge_no_longer_decrypts_purged_patients(owner: Any, tmp_path: Path) -> None:
    gone = new_patient(owner, 1)
    record_test(owner, gone)
    kept = new_patient(owner, 2)
    record_test(owner, kept, results={"sars-cov-2": RESULT_DETECTED})  # positive: kept 184 days
    settle()
    assert Patient.objects.get(pk=gone.pk).retention_key == Patient.objects.get(pk=kept.pk).retention_key  # same day
    shared_key = gone.retention_key
    backup = _backup(tmp_path)
    assert _decrypt_from(backup, gone.pk) == "PATIENT-1"  # the copy is readable before the purge

    report = purge(now=timezone.now() + days(93))
    assert report["classes"]["identities"]["patients"] == 1
    assert report["classes"]["keys"]["keys_destroyed"] >= 1 and report["classes"]["keys"]["rows_rekeyed"] >= 1
    assert not DataKey.objects.filter(key_id=shared_key).exists()
    assert not (crypto.key_dir() / f"{shared_key}.secret").exists()

    with pytest.raises(crypto.DecryptionError, match="destroyed"):
        _decrypt_from(backup, gone.pk)  # even with its wrapped key restored and the master key at hand
    crypto.forget_keys()
    live = Patient.objects.get(pk=kept.pk)
    assert live.last_name == "PATIENT-2" and live.email == "p2@example.org"
    assert live.retention_key != shared_key
    assert DataKey.objects.get(key_id=live.retention_key).expires_on >= timezone.localdate() + timedelta(days=183)
    assert all(n.address for n in Notification.objects.filter(patient_id=kept.pk))  # addresses moved with it


def test_a_newer_test_moves_the_identity_to_the_later_key(owner: Any, patient: Any) -> None:
    first = Patient.objects.get(pk=patient.pk).retention_key
    screening = record_test(owner, patient)
    after = Patient.objects.get(pk=patient.pk)
    assert after.retention_key == first  # registered today, tested today: the same day
    Patient.objects.filter(pk=patient.pk).update(retention_key="")  # as if registered before retention keys
    record_test(owner, Patient.objects.get(pk=patient.pk), sampled_at=screening.sampled_at + timedelta(minutes=5))
    stored = Patient.objects.filter(pk=patient.pk).values_list("last_name", "retention_key").get()
    assert crypto.key_id_of(stored[0]) == stored[1] == first
    assert Patient.objects.get(pk=patient.pk).last_name == "DURAND-TESTEUR"


def test_one_key_per_day_even_when_two_processes_create_it(db: Any) -> None:
    day = timezone.localdate() + timedelta(days=400)
    first = crypto._create_retention_key(day)
    crypto.forget_keys()
    second = crypto._create_retention_key(day)  # lost the race: the unique constraint hands back the first
    assert second == first
    assert DataKey.objects.filter(expires_on=day).count() == 1
    assert sorted(p.name for p in crypto.key_dir().glob(f"{first}*")) == [f"{first}.secret"]
    assert crypto.retention_key_id(day) == first


def test_key_directory_and_secret_files_are_private(db: Any) -> None:
    key_id = crypto.retention_key_id(timezone.localdate() + timedelta(days=401))
    assert stat.S_IMODE(crypto.key_dir().stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE((crypto.key_dir() / f"{key_id}.secret").stat().st_mode) == 0o600
    assert crypto.key_id_of(crypto.encrypt("x", aad=b"a", key_id=key_id)) == key_id


def test_rotation_keeps_retention_keys_and_the_purge_still_shreds(owner: Any) -> None:
    from django.core.management import call_command

    gone = new_patient(owner, 1)
    record_test(owner, gone)
    settle()
    call_command("rotate_keys", "--no-progress", stdout=__import__("io").StringIO())
    crypto.forget_keys()
    assert Patient.objects.get(pk=gone.pk).last_name == "PATIENT-1"
    assert DataKey.objects.get(key_id=gone.retention_key).retired_at is None
    purge(now=timezone.now() + days(93))
    assert not DataKey.objects.filter(key_id=gone.retention_key).exists()


def test_two_connections_racing_for_a_day_end_with_one_key(db: Any) -> None:
    """Each thread has its own connection and commits for real (outside the test's transaction)."""
    if connection.vendor != "postgresql":
        pytest.skip("real concurrent writers need PostgreSQL (SQLite serialises writers)")
    import threading

    from django.db import connections, transaction

    day = timezone.localdate() + timedelta(days=402)
    gate = threading.Barrier(2)
    got: list[str] = []

    def create() -> None:
        try:
            with transaction.atomic():
                gate.wait()
                got.append(crypto._create_retention_key(day))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(got) == 2 and got[0] == got[1]
    assert DataKey.objects.filter(expires_on=day).count() == 1
    assert len(list(crypto.key_dir().glob(f"{got[0]}*"))) == 1

    def clean() -> None:
        try:
            DataKey.objects.filter(expires_on=day).delete()
        finally:
            connections.close_all()

    cleaner = threading.Thread(target=clean)
    cleaner.start()
    cleaner.join(timeout=30)
