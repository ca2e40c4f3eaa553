"""Every inside check of doctor, with a passing and a failing fixture."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from relais.audit import seal
from relais.audit.services import audit_record
from relais.certificates.keys import generate_dev_signer, write_signer
from relais.core.secrets import SECRET_NAMES, generate_secret
from relais.ops import checks as c
from relais.transfer.models import OutboxMessage
from tests.audit.test_seal_verify import event_at, sql


def _strong(tmp_path: Path) -> dict[str, tuple[str, Path | None]]:
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    values: dict[str, tuple[str, Path | None]] = {}
    for name in SECRET_NAMES:
        path = folder / name.lower()
        value = generate_secret(name)
        path.write_text(value)
        path.chmod(0o600)
        values[name] = (value, path)
    return values


def _by_name(found: list[c.Check]) -> dict[str, c.Check]:
    return {check.name: check for check in found}


def test_secrets_pass_when_present_strong_distinct_and_safe(tmp_path: Path) -> None:
    found = c.check_secrets(_strong(tmp_path), production=True)
    assert [check.status for check in found] == ["pass"] * (len(SECRET_NAMES) + 1), found
    assert "secrets distinct" in _by_name(found)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("RELAIS_MASTER_KEY", base64.urlsafe_b64encode(bytes(32)).decode(), "all zero bytes"),
        ("RELAIS_BLIND_INDEX_KEY", base64.urlsafe_b64encode(b"A" * 32).decode(), "one character or byte repeated"),
        ("DJANGO_SECRET_KEY", "abcde" * 10, "short pattern repeated"),
        ("DJANGO_SECRET_KEY", "changeme", "default"),
        ("RELAIS_BACKUP_KEY", "not base64!", "base64"),
    ],
)
def test_weak_secret_fails_without_showing_it(tmp_path: Path, name: str, value: str, reason: str) -> None:
    values = _strong(tmp_path)
    values[name] = (value, values[name][1])
    check = _by_name(c.check_secrets(values, production=True))[f"secret {name}"]
    assert check.status == "fail" and reason in check.detail
    assert value not in check.detail


def test_missing_secret_fails(tmp_path: Path) -> None:
    values = _strong(tmp_path)
    del values["RELAIS_AUDIT_SIGNING_KEY"]
    assert _by_name(c.check_secrets(values, production=True))["secret RELAIS_AUDIT_SIGNING_KEY"].status == "fail"


def test_secret_inside_another_fails(tmp_path: Path) -> None:
    values = _strong(tmp_path)
    master = values["RELAIS_MASTER_KEY"][0]
    values["DJANGO_SECRET_KEY"] = (generate_secret("DJANGO_SECRET_KEY") + master, None)
    check = _by_name(c.check_secrets(values, production=True))["secrets distinct"]
    assert check.status == "fail" and "DJANGO_SECRET_KEY contains RELAIS_MASTER_KEY" in check.detail
    assert master not in check.detail
    values["DJANGO_SECRET_KEY"] = values["RELAIS_BLIND_INDEX_KEY"]
    assert "must differ" in _by_name(c.check_secrets(values, production=True))["secrets distinct"].detail


@pytest.mark.parametrize("damage", ["group", "world", "symlink", "served", "owner"])
def test_unsafe_secret_file_fails(tmp_path: Path, settings: Any, damage: str) -> None:
    values = _strong(tmp_path)
    value, path = values["RELAIS_WEBHOOK_SIGNING_KEY"]
    assert path is not None
    static = tmp_path / "static"
    static.mkdir()
    settings.SERVED_DIRS = (static,)
    if damage == "group":
        path.chmod(0o640)
    elif damage == "world":
        path.chmod(0o604)
    elif damage == "symlink":
        link = tmp_path / "link"
        link.symlink_to(path)
        path = link
    elif damage == "served":
        link = static / "key.txt"
        link.symlink_to(path)  # the target is safe, the link is what the web server serves
        path = link
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(path, 65534, 65534)
    values["RELAIS_WEBHOOK_SIGNING_KEY"] = (value, path)
    check = _by_name(c.check_secrets(values, production=True))["secret RELAIS_WEBHOOK_SIGNING_KEY"]
    assert check.status == "fail", check
    assert value not in check.detail


def test_secret_from_the_environment_warns_in_production(tmp_path: Path) -> None:
    values = _strong(tmp_path)
    values["RELAIS_MASTER_KEY"] = (values["RELAIS_MASTER_KEY"][0], None)
    assert _by_name(c.check_secrets(values, production=True))["secret RELAIS_MASTER_KEY"].status == "warn"


def test_dcc_signer_key_file(tmp_path: Path, settings: Any) -> None:
    write_signer(generate_dev_signer(), key_file=tmp_path / "key.pem", cert_file=tmp_path / "cert.pem")
    settings.RELAIS_DCC = {**settings.RELAIS_DCC, "key_file": str(tmp_path / "key.pem")}
    assert c.check_dcc_signer_key().status == "pass"
    (tmp_path / "key.pem").chmod(0o640)
    assert c.check_dcc_signer_key().status == "fail"


def test_debug(settings: Any) -> None:
    settings.DEBUG = False
    assert c.check_debug().status == "pass"
    settings.DEBUG = True
    assert c.check_debug().status == "fail"


@pytest.mark.parametrize(
    ("hosts", "status"), [(["relais.example.org"], "pass"), (["*"], "fail"), (["a.org", "*.b.org"], "fail"), ([], "fail")]
)
def test_allowed_hosts(hosts: list[str], status: str) -> None:
    assert c.check_allowed_hosts(hosts).status == status


@pytest.mark.parametrize(("days_ago", "days", "status"), [(1, 365, "pass"), (340, 365, "warn"), (400, 365, "fail"), (-5, 365, "fail")])
def test_dcc_certificate(tmp_path: Path, days_ago: int, days: int, status: str) -> None:
    signer = generate_dev_signer(now=datetime.now(UTC) - timedelta(days=days_ago), days=days)
    write_signer(signer, key_file=tmp_path / "key.pem", cert_file=tmp_path / "cert.pem")
    assert c.check_dcc_certificate(cert_file=tmp_path / "cert.pem").status == status


def test_dcc_certificate_missing_fails_in_production(tmp_path: Path, settings: Any) -> None:
    settings.RELAIS_ENV = "production"
    assert c.check_dcc_certificate(cert_file=tmp_path / "none.pem").status == "fail"


def test_audit_triggers(db: Any) -> None:
    assert c.check_audit_triggers().status == "pass"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
    check = c.check_audit_triggers()
    assert check.status == "fail" and "audit_event_no_update" in check.detail


def test_audit_seal(db: Any, settings: Any, tmp_path: Path) -> None:
    settings.RELAIS_AUDIT_SEAL = {"every_events": 5, "every_seconds": 60, "delay_seconds": 300, "files": []}
    with transaction.atomic():
        for i in range(10):
            audit_record(actor=None, action="patient.view", object_ids=[], detail={"i": i})
    seal.seal_pending(checkpoint=True)
    assert c.check_audit_seal().status == "pass"
    sql("UPDATE audit_auditevent SET detail = %s WHERE id = %s", ['{"i": 99}', event_at(7)])
    check = c.check_audit_seal()
    assert check.status == "fail" and "modified event at seq 7" in check.detail


def test_migrations(db: Any) -> None:
    assert c.check_migrations().status == "pass"
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = 'audit' AND name = '0005_event_pharmacy_actor_indexes'")
    check = c.check_migrations()
    assert check.status == "fail" and "audit.0005_event_pharmacy_actor_indexes" in check.detail


def test_queues(screening: Any) -> None:
    assert {check.status for check in c.check_queues()} == {"pass"}
    later = timezone.now() + timedelta(hours=7)  # the test's outbox row is 7 hours old by then
    found = _by_name(c.check_queues(now=later))
    assert found["queue transfer"].status == "fail" and "oldest_age_seconds" in found["queue transfer"].detail
    OutboxMessage.objects.update(status="rejected", error_count=5)
    found = _by_name(c.check_queues())
    assert found["queue transfer"].status == "warn" and "parked 1" in found["queue transfer"].detail


def test_backup(settings: Any) -> None:
    now = timezone.now()
    assert c.check_backup(now=now, last_backup_at=lambda: now - timedelta(hours=3)).status == "pass"
    assert c.check_backup(now=now, last_backup_at=lambda: now - timedelta(hours=27)).status == "fail"
    assert c.check_backup(now=now, last_backup_at=lambda: None).status == "warn"
    settings.RELAIS_ENV = "production"
    assert c.check_backup(now=now, last_backup_at=lambda: None).status == "fail"
    settings.RELAIS_BACKUP_MAX_AGE_HOURS = 2
    assert c.check_backup(now=now, last_backup_at=lambda: now - timedelta(hours=3)).status == "fail"


def test_backup_reads_the_backup_module(db: Any, settings: Any, tmp_path: Path) -> None:
    settings.RELAIS_BACKUP_DIR = tmp_path  # empty: no backup yet
    check = c.check_backup()
    assert check.status == "warn" and "no backup found" in check.detail


def _collected(root: Path) -> None:
    (root / "css").mkdir(parents=True)
    for name in ("css/relais.css", "css/relais.0123abcd.css", "css/relais.0123abcd.css.gz", "css/relais.0123abcd.css.br"):
        (root / name).write_text("body{}")
    (root / "staticfiles.json").write_text(json.dumps({"paths": {"css/relais.css": "css/relais.0123abcd.css"}, "version": "1.1"}))


def test_static_folder_with_only_collected_files(tmp_path: Path) -> None:
    _collected(tmp_path)
    assert c.check_static_folder(tmp_path).status == "pass"


@pytest.mark.parametrize("stray", ["file", "folder", "symlink"])
def test_static_folder_with_anything_else_fails(tmp_path: Path, stray: str) -> None:
    _collected(tmp_path)
    if stray == "file":
        (tmp_path / "css" / "notes.txt").write_text("x")
    elif stray == "folder":
        (tmp_path / "secrets").mkdir()
    else:
        outside = tmp_path.parent / f"{tmp_path.name}-key"
        outside.write_text("secret")
        (tmp_path / "css" / "relais.css").unlink()
        (tmp_path / "css" / "relais.css").symlink_to(outside)  # even under a collected name
    check = c.check_static_folder(tmp_path)
    assert check.status == "fail", check


def test_static_folder_without_manifest(tmp_path: Path, settings: Any) -> None:
    (tmp_path / "x.css").write_text("")
    assert c.check_static_folder(tmp_path).status == "warn"
    settings.RELAIS_ENV = "production"
    assert c.check_static_folder(tmp_path).status == "fail"


def test_a_crashing_check_is_a_named_fail() -> None:
    def check_boom() -> c.Check:
        raise RuntimeError("a message that might hold anything")

    [check] = c.run_checks([check_boom])
    assert check == c.Check("boom", "fail", "the check itself failed (RuntimeError)")
