"""Backups and restores of a whole installation: the database, the retention keys and the audit checkpoint files.

``create_backup`` writes one encrypted, authenticated file (fileformat.py) holding, in order: a manifest (figures only:
row counts per table, key ids, never a row's content), the retention-key secrets of RELAIS_KEY_DIR, the audit
checkpoint files (RELAIS_AUDIT_SEAL["files"]) up to the database's last checkpoint, and the database (SQLite file or
pg_dump custom archive). ``restore_backup`` authenticates the whole file before it touches anything, refuses what it
cannot restore faithfully (another key, another backend, other master / blind-index / audit keys, a database holding
data without ``overwrite``, a key file or checkpoint file that disagrees), then restores and checks: every table's
count, the audit seal, and that a sample of patients decrypts. ``prune_backups`` deletes backups older than
RELAIS_BACKUP_RETENTION_DAYS: a backup holds retention keys, so it must not outlive the shortest retention period.
Every run writes an audit event (system actor) with figures only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from relais.audit.services import audit_record
from relais.backup import databases
from relais.backup.archive import read_parts, write_end, write_part
from relais.backup.fileformat import (
    SUFFIX,
    BackupFileError,
    EncryptingWriter,
    Header,
    decode_backup_key,
    decrypt_chunks,
    make_header,
    read_header,
)
from relais.backup.status import backup_dir
from relais.core.secrets import decode_key

log = logging.getLogger("relais.backup")

MANIFEST = "manifest.json"
DATABASE = "database"
KEYS = "keys/"
CHECKPOINTS = "checkpoints/"
SAMPLE = 100  # patients decrypted after a restore
STALE = timedelta(days=1)  # a work folder or temporary file this old belongs to a killed run


class BackupError(Exception):
    """A backup or restore refused or failed; the message says why and what to do, never with personal data."""


def _key() -> bytes:
    return decode_backup_key(settings.RELAIS_BACKUP_KEY)


def blind_index_key_id() -> str:
    raw = decode_key("RELAIS_BLIND_INDEX_KEY", settings.RELAIS_BLIND_INDEX_KEY)
    return hashlib.sha256(b"relais-blind-index-key-id\0" + raw).hexdigest()[:16]


def _served(path: Path) -> bool:
    return any(path.resolve().is_relative_to(Path(d).resolve()) for d in settings.SERVED_DIRS)


def _key_files() -> dict[str, bytes]:
    folder = Path(settings.RELAIS_KEY_DIR)
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.secret")) if p.is_file() and not p.is_symlink()}


def _checkpoint_files() -> list[Path]:
    return [Path(f) for f in settings.RELAIS_AUDIT_SEAL.get("files", ()) if f]


def _checkpoint_lines(path: Path, *, upto: int) -> bytes:
    """The file's lines for checkpoints the snapshot holds (later ones belong to events the backup does not have)."""
    if not path.is_file():
        return b""
    kept = []
    for line in path.read_bytes().splitlines(keepends=True):
        if line.strip() and int(json.loads(line).get("seq_last", 0)) <= upto:
            kept.append(line if line.endswith(b"\n") else line + b"\n")
    return b"".join(kept)


def _clean_stale(folder: Path, *, now: float) -> int:
    """Remove work folders and temporary files left by killed runs (a work folder may hold a plaintext copy)."""
    removed = 0
    for path in folder.glob(".backup-*"):
        try:
            if now - path.lstat().st_mtime > STALE.total_seconds():
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _bar(progress: TextIO | None, *, total: int | None, desc: str) -> Any:
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=progress, disable=progress is None, leave=False)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- backup


@dataclass
class BackupReport:
    path: Path
    created_at: datetime
    backend: str
    key_id: str
    size: int
    database_bytes: int
    seconds: float
    tables: int
    rows: int
    retention_keys: int
    checkpoint_files: int
    warnings: list[str] = field(default_factory=list)


def _destination(output: Path | None, *, backend: str, created_at: datetime) -> Path:
    name = f"relais-{created_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{backend}{SUFFIX}"
    if output is None:
        folder = backup_dir()
        if folder is None:
            raise BackupError("RELAIS_BACKUP_DIR is not set: name the folder backups go to (outside any served folder)")
        target = folder / name
    else:
        target = output / name if output.is_dir() else output
    if _served(target):
        raise BackupError(f"{target.parent} is inside a served folder: write backups elsewhere")
    if target.exists():
        raise BackupError(f"{target} already exists: backups are never overwritten")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return target


def _seal_first(warnings: list[str]) -> None:
    """Seal and checkpoint the audit log, so the backup's events are signed and its checkpoint files complete."""
    from relais.audit.seal import seal_pending

    try:
        seal_pending(checkpoint=True)
    except Exception as exc:  # the backup matters more; the sealer will catch up
        warnings.append(f"could not seal the audit log first ({exc.__class__.__name__}); unsealed events are backed up as they are")


def create_backup(*, output: Path | None = None, progress: TextIO | None = None) -> BackupReport:
    started = time.monotonic()
    vendor = databases.backend()
    key = _key()
    warnings: list[str] = []
    _seal_first(warnings)
    probe = _destination(output, backend=vendor, created_at=timezone.now())
    folder = probe.parent
    _clean_stale(folder, now=time.time())
    workdir = Path(tempfile.mkdtemp(prefix=".backup-", dir=folder))  # mode 0700: the SQLite copy is plaintext
    dump: databases.PgDump | None = None
    temp: Path | None = None
    try:
        keys = _key_files()  # before and after the snapshot: a key created or destroyed meanwhile is still covered
        if vendor == "sqlite":
            copy = workdir / "db.sqlite3"
            snapshot = databases.sqlite_copy(dest=copy)
            db_size: int | None = copy.stat().st_size
        else:
            dump = databases.PgDump()
            snapshot, db_size = dump.snapshot, None
        created_at = timezone.now()
        # Only the secrets of keys the snapshot uses: a backup should hold no more key material than it needs.
        wanted = {f"{k}.secret" for k in snapshot.retention_key_ids}
        keys = {name: secret for name, secret in {**_key_files(), **keys}.items() if name in wanted}
        missing = wanted - set(keys)
        if missing:
            warnings.append(f"{len(missing)} retention keys of the database have no secret file (destroyed by the purge)")
        checkpoints = {i: _checkpoint_lines(p, upto=snapshot.last_checkpoint_seq) for i, p in enumerate(_checkpoint_files())}
        target = probe if output is not None and not output.is_dir() else _destination(output, backend=vendor, created_at=created_at)
        header = make_header(key=key, backend=vendor, created_at=created_at)
        manifest = {
            "format": 1,
            "backend": vendor,
            "created_at": created_at.astimezone(UTC).isoformat(),
            "tables": snapshot.tables,
            "rows": sum(snapshot.tables.values()),
            "master_key_ids": snapshot.master_key_ids,
            "blind_index_key_id": blind_index_key_id(),
            "audit_key_ids": snapshot.audit_key_ids,
            "last_checkpoint_seq": snapshot.last_checkpoint_seq,
            "retention_keys": len(keys),
            "checkpoint_files": sorted(checkpoints),
        }
        temp = target.parent / f".backup-{os.getpid()}-{target.name}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            writer = EncryptingWriter(handle, key=key, header=header)
            write_part(writer, MANIFEST, [json.dumps(manifest, sort_keys=True).encode()])
            for name, secret in sorted(keys.items()):
                write_part(writer, KEYS + name, [secret])
            for index, text in checkpoints.items():
                write_part(writer, f"{CHECKPOINTS}{index}", [text])
            with _bar(progress, total=db_size, desc="backup") as bar:
                pieces = databases.read_file(workdir / "db.sqlite3") if dump is None else dump.chunks()
                db_bytes = write_part(writer, DATABASE, _counted(pieces, bar.update))
            write_end(writer)
            writer.close()
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        temp = None
        _fsync_dir(target.parent)
    finally:
        if dump is not None:
            dump.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if temp is not None:
            temp.unlink(missing_ok=True)
    report = BackupReport(
        path=target,
        created_at=created_at,
        backend=vendor,
        key_id=header.key_id,
        size=target.stat().st_size,
        database_bytes=db_bytes,
        seconds=round(time.monotonic() - started, 2),
        tables=len(snapshot.tables),
        rows=sum(snapshot.tables.values()),
        retention_keys=len(keys),
        checkpoint_files=len(checkpoints),
        warnings=warnings,
    )
    with transaction.atomic():
        audit_record(actor=None, action="backup.create", object_type="backup", detail=_figures(report))
    log.info("backup written: %s bytes, %s tables, %s rows, %.1f s", report.size, report.tables, report.rows, report.seconds)
    return report


def _figures(report: BackupReport) -> dict[str, Any]:
    return {
        "file": report.path.name,
        "backend": report.backend,
        "key_id": report.key_id,
        "bytes": report.size,
        "tables": report.tables,
        "rows": report.rows,
        "retention_keys": report.retention_keys,
        "checkpoint_files": report.checkpoint_files,
        "seconds": report.seconds,
    }


def _counted(pieces: Iterator[bytes], update: Callable[[int], Any]) -> Iterator[bytes]:
    for piece in pieces:
        update(len(piece))
        yield piece


# ---------------------------------------------------------------- reading a backup


@dataclass
class Contents:
    """What a backup holds besides the database, read and authenticated to the last byte."""

    header: Header
    manifest: dict[str, Any]
    keys: dict[str, bytes]
    checkpoints: dict[int, bytes]
    database_bytes: int


class _Counting:
    def __init__(self, handle: BinaryIO, update: Callable[[int], Any]) -> None:
        self.handle, self.update = handle, update

    def read(self, n: int = -1) -> bytes:
        data = self.handle.read(n)
        self.update(len(data))
        return data


def _parts(handle: BinaryIO, *, key: bytes) -> tuple[Header, Iterator[tuple[str, Iterator[bytes]]]]:
    header = read_header(handle)
    return header, read_parts(decrypt_chunks(handle, key=key, header=header))


def read_contents(handle: BinaryIO, *, progress: TextIO | None = None) -> Contents:
    """Authenticate the whole file (every chunk, the order, the end) and return everything but the database."""
    key = _key()
    size = os.fstat(handle.fileno()).st_size
    manifest: dict[str, Any] | None = None
    keys: dict[str, bytes] = {}
    checkpoints: dict[int, bytes] = {}
    db_bytes = -1
    handle.seek(0)
    with _bar(progress, total=size, desc="verify") as bar:
        header, parts = _parts(_Counting(handle, bar.update), key=key)  # type: ignore[arg-type]
        for name, pieces in parts:
            if name == MANIFEST:
                manifest = json.loads(b"".join(pieces))
            elif name.startswith(KEYS):
                keys[name[len(KEYS) :]] = b"".join(pieces)
            elif name.startswith(CHECKPOINTS):
                checkpoints[int(name[len(CHECKPOINTS) :])] = b"".join(pieces)
            elif name == DATABASE:
                db_bytes = sum(len(p) for p in pieces)
            else:
                raise BackupFileError(f"the backup holds an unknown part {name!r}")
    if manifest is None or db_bytes < 0:
        raise BackupFileError("the backup lacks its manifest or its database")
    if manifest.get("backend") != header.backend:
        raise BackupFileError("the backup's manifest and header disagree")
    for name in keys:
        if "/" in name or not name.endswith(".secret") or name.startswith("."):
            raise BackupFileError("the backup holds a key file with an unsafe name")
    return Contents(header=header, manifest=manifest, keys=keys, checkpoints=checkpoints, database_bytes=db_bytes)


# ---------------------------------------------------------------- restore


@dataclass
class RestoreReport:
    created_at: datetime
    backend: str
    seconds: float
    tables: int
    rows: int
    keys_written: int
    checkpoint_files_written: int
    count_mismatches: dict[str, tuple[int, int]]
    seal_ok: bool
    seal_problem: str
    patients_checked: int
    patients_failed: int
    migrations_pending: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.count_mismatches and self.seal_ok and not self.patients_failed


def _preflight(contents: Contents, *, overwrite: bool) -> None:
    """Everything that can refuse, checked before anything is touched."""
    from relais.audit.seal import trusted_keys
    from relais.core.crypto import master_keys

    manifest = contents.manifest
    vendor = databases.backend()
    if contents.header.backend != vendor:
        raise BackupError(f"this is a {contents.header.backend} backup; the configured database is {vendor}")
    unknown_masters = sorted(set(manifest.get("master_key_ids", [])) - set(master_keys()))
    if unknown_masters:
        raise BackupError(
            f"the backup's data keys are wrapped by master key id(s) {', '.join(unknown_masters)}, which RELAIS_MASTER_KEY"
            " (and RELAIS_OLD_MASTER_KEYS) here do not include: configure the master key of the backed-up installation"
        )
    if manifest.get("blind_index_key_id") != blind_index_key_id():
        raise BackupError(
            f"the backup was made with blind-index key id {manifest.get('blind_index_key_id')}, this installation has"
            f" {blind_index_key_id()}: configure the RELAIS_BLIND_INDEX_KEY of the backed-up installation"
        )
    unknown_audit = sorted(set(manifest.get("audit_key_ids", [])) - set(trusted_keys()))
    if unknown_audit:
        raise BackupError(
            f"audit checkpoints in the backup are signed by key id(s) {', '.join(unknown_audit)}, which this installation"
            " does not trust: configure its RELAIS_AUDIT_SIGNING_KEY (or RELAIS_AUDIT_TRUSTED_PUBLIC_KEYS)"
        )
    if databases.holds_data() and not overwrite:
        raise BackupError("the configured database already holds data; a restore replaces all of it: pass --yes to confirm")
    if vendor == "sqlite":
        databases.sqlite_target()
    folder = Path(settings.RELAIS_KEY_DIR)
    for name, secret in contents.keys.items():
        existing = folder / name
        if existing.exists() and existing.read_bytes() != secret:
            raise BackupError(f"RELAIS_KEY_DIR already holds a different {name}: this key folder belongs to another installation")
    files = _checkpoint_files()
    for index, text in contents.checkpoints.items():
        if index < len(files) and files[index].is_file():
            current = files[index].read_bytes()
            if current and not current.startswith(text):
                raise BackupError(
                    f"{files[index]} does not continue the backup's checkpoints: it belongs to another audit log; move it aside"
                )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.restore-{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _restore_files(contents: Contents) -> tuple[int, int]:
    from relais.core.crypto import key_dir

    folder = key_dir()
    keys_written = 0
    for name, secret in sorted(contents.keys.items()):
        if not (folder / name).exists():
            _write_private(folder / name, secret)
            keys_written += 1
    files = _checkpoint_files()
    written = 0
    for index, text in sorted(contents.checkpoints.items()):
        if index < len(files) and text and not (files[index].is_file() and files[index].stat().st_size):
            _write_private(files[index], text)
            written += 1
    return keys_written, written


def _restore_database(handle: BinaryIO, contents: Contents, *, progress: TextIO | None) -> None:
    handle.seek(0)
    _header, parts = _parts(handle, key=_key())
    vendor = contents.header.backend
    with _bar(progress, total=contents.database_bytes, desc="restore") as bar:
        for name, pieces in parts:
            if name != DATABASE:
                continue
            if vendor == "sqlite":
                target = databases.sqlite_target()
                target.parent.mkdir(parents=True, exist_ok=True)
                workdir = Path(tempfile.mkdtemp(prefix=".backup-", dir=target.parent))
                try:
                    copy = workdir / "db.sqlite3"
                    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        for piece in pieces:
                            out.write(piece)
                            bar.update(len(piece))
                    databases.sqlite_install(source=copy, target=target)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
            else:
                if databases.has_tables():
                    databases.pg_reset_schema()
                databases.pg_restore(pieces=pieces, on_bytes=bar.update)


def _check_patients() -> tuple[int, int]:
    """Decrypt every encrypted field of a sample of patients; returns (checked, failed)."""
    from relais.core.crypto import DecryptionError, forget_keys
    from relais.core.fields import encrypted_field_names
    from relais.patients.models import Patient

    forget_keys()
    names = encrypted_field_names(Patient)
    sample = list(Patient.objects.order_by("?")[:SAMPLE])
    failed = 0
    for patient in sample:
        try:
            for name in names:
                getattr(patient, name)
        except DecryptionError:
            failed += 1
    return len(sample), failed


def _pending_migrations() -> int:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def restore_backup(*, path: Path, overwrite: bool = False, progress: TextIO | None = None) -> RestoreReport:
    started = time.monotonic()
    with path.open("rb") as handle:
        try:
            contents = read_contents(handle, progress=progress)
        except BackupFileError as exc:
            raise BackupError(f"{path.name}: {exc}; nothing was changed") from exc
        _preflight(contents, overwrite=overwrite)
        try:
            _restore_database(handle, contents, progress=progress)
        except BackupFileError as exc:  # the file changed since it was verified
            raise BackupError(f"{path.name} changed while it was being restored: {exc}") from exc
        except databases.DatabaseError as exc:
            raise BackupError(str(exc)) from exc
    connection.close()
    keys_written, checkpoints_written = _restore_files(contents)
    manifest = contents.manifest
    counts = databases.current_counts()
    expected: dict[str, int] = manifest["tables"]
    mismatches = {t: (n, counts.get(t, -1)) for t, n in expected.items() if counts.get(t, -1) != n}
    mismatches.update({t: (-1, n) for t, n in counts.items() if t not in expected})
    from relais.audit.verify import verify

    # Judged as of the backup's moment: events it caught unsealed were still within the sealing delay then.
    seal = verify(now=contents.header.created_at)
    first = seal.first
    checked, failed = _check_patients()
    report = RestoreReport(
        created_at=contents.header.created_at,
        backend=contents.header.backend,
        seconds=0.0,
        tables=len(counts),
        rows=sum(counts.values()),
        keys_written=keys_written,
        checkpoint_files_written=checkpoints_written,
        count_mismatches=mismatches,
        seal_ok=seal.ok,
        seal_problem=f"{first.kind} at {first.seq}: {first.detail}" if first else "",
        patients_checked=checked,
        patients_failed=failed,
        migrations_pending=_pending_migrations(),
    )
    if len(contents.checkpoints) > len(_checkpoint_files()):
        report.notes.append("the backup holds more audit checkpoint files than RELAIS_AUDIT_SEAL files configures here")
    if report.migrations_pending:
        report.notes.append(f"{report.migrations_pending} migrations of this code are not applied: run manage.py migrate")
    report.notes.append("run manage.py purge now: data whose retention ended since the backup was made is back until it runs")
    report.seconds = round(time.monotonic() - started, 2)
    with transaction.atomic():
        audit_record(
            actor=None,
            action="backup.restore",
            object_type="backup",
            detail={
                "file": path.name,
                "backend": report.backend,
                "key_id": contents.header.key_id,
                "backup_created_at": contents.header.created_at.isoformat(),
                "tables": report.tables,
                "rows": report.rows,
                "count_mismatches": len(mismatches),
                "seal_ok": report.seal_ok,
                "patients_checked": checked,
                "patients_failed": failed,
                "seconds": report.seconds,
            },
        )
    log.info(
        "backup restored: %s tables, %s rows, checks %s, %.1f s",
        report.tables,
        report.rows,
        "ok" if report.ok else "FAILED",
        report.seconds,
    )
    return report


# ---------------------------------------------------------------- retention of backups


def prune_backups(*, now: datetime | None = None, folder: Path | None = None, days: int | None = None) -> list[Path]:
    """Delete backups older than ``days`` (RELAIS_BACKUP_RETENTION_DAYS) by their header time (file time if unreadable),
    whatever key made them, and what killed runs left behind."""
    folder = folder or backup_dir()
    if folder is None or not folder.is_dir():
        return []
    now = now or timezone.now()
    limit = now - timedelta(days=days if days is not None else settings.RELAIS_BACKUP_RETENTION_DAYS)
    _clean_stale(folder, now=now.timestamp())
    removed = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            with path.open("rb") as handle:
                made = read_header(handle).created_at
        except (OSError, BackupFileError):
            made = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        if made < limit:
            path.unlink()
            removed.append(path)
    if removed:
        with transaction.atomic():
            audit_record(actor=None, action="backup.prune", object_type="backup", detail={"deleted": len(removed)})
        log.info("backups pruned: %s deleted", len(removed))
    return removed


def prune_job(now: datetime) -> dict[str, Any]:
    """Scheduled daily (``backup.prune``), so backups go on time even when backups themselves stop running."""
    return {"deleted": len(prune_backups(now=now))}
