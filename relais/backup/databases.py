"""The two database backends a backup reads and a restore writes: SQLite (online backup API) and PostgreSQL (pg_dump).

Both take one consistent snapshot and count every table inside it, so a restore can prove it got every row back:
SQLite copies the live database with ``sqlite3.Connection.backup`` in one step (a read transaction: writers go on in
WAL mode, the copy is the state at its start) into a private temporary file; PostgreSQL exports a snapshot from a
REPEATABLE READ transaction, counts in it and hands it to ``pg_dump --snapshot``, whose output is streamed, never
written to disk in clear. Passwords go to pg_dump / pg_restore through PGPASSWORD, never on a command line.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.db import connection

PIECE = 1024 * 1024
# Tables that hold what an installation is: a database with rows in any of them is not "empty" for a restore.
DATA_TABLES = ("accounts_pharmacy", "accounts_user", "patients_patient", "audit_auditevent")


class DatabaseError(Exception):
    """The database could not be read or written as a backup or restore needs; the message says what to do."""


@dataclass
class Snapshot:
    """What a backup records about its database besides the dump: figures only, never a row's content."""

    tables: dict[str, int] = field(default_factory=dict)
    master_key_ids: list[str] = field(default_factory=list)
    retention_key_ids: list[str] = field(default_factory=list)
    last_checkpoint_seq: int = 0
    audit_key_ids: list[str] = field(default_factory=list)


def backend() -> str:
    vendor = connection.vendor
    if vendor not in {"sqlite", "postgresql"}:
        raise DatabaseError(f"backups support SQLite and PostgreSQL, not {vendor}")
    return vendor


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _snapshot_of(cursor: Any, tables: list[str]) -> Snapshot:
    snap = Snapshot()
    for table in sorted(tables):
        cursor.execute(f"SELECT COUNT(*) FROM {_quote(table)}")  # noqa: S608 - names from the catalogue, quoted
        snap.tables[table] = int(cursor.fetchone()[0])
    if "core_datakey" in snap.tables:
        cursor.execute("SELECT DISTINCT master_key_id FROM core_datakey")
        snap.master_key_ids = sorted(str(r[0]) for r in cursor.fetchall())
        cursor.execute("SELECT key_id FROM core_datakey WHERE expires_on IS NOT NULL")
        snap.retention_key_ids = sorted(str(r[0]) for r in cursor.fetchall())
    if "audit_auditcheckpoint" in snap.tables:
        cursor.execute("SELECT MAX(seq_last) FROM audit_auditcheckpoint")
        snap.last_checkpoint_seq = int(cursor.fetchone()[0] or 0)
        cursor.execute("SELECT DISTINCT key_id FROM audit_auditcheckpoint")
        snap.audit_key_ids = sorted(str(r[0]) for r in cursor.fetchall())
    return snap


# ---------------------------------------------------------------- SQLite


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").fetchall()
    return [str(r[0]) for r in rows]


def sqlite_copy(*, dest: Path) -> Snapshot:
    """Copy the live database into ``dest`` (a file in a private folder) and count its tables there."""
    connection.ensure_connection()
    source = connection.connection
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or "mode=memory" in name:
        # The test suite's shared-cache memory database, inside its test transaction: the backup API would wait forever
        # on the shared-cache lock; serialize() reads this connection's view at once.
        with open(dest, "wb") as handle:
            handle.write(source.serialize())
    target = sqlite3.connect(dest)
    try:
        if name != ":memory:" and "mode=memory" not in name:
            # One step: a single read transaction, so the copy is one consistent state; stepping restarts on every write.
            source.backup(target, pages=-1)
        target.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
        return _snapshot_of(target.cursor(), _sqlite_tables(target))
    finally:
        target.close()


def read_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while piece := handle.read(PIECE):
            yield piece


def sqlite_target() -> Path:
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        raise DatabaseError("restore needs an SQLite database file, not an in-memory database")
    return Path(name)


def sqlite_install(*, source: Path, target: Path) -> None:
    """Replace the content of ``target`` with ``source`` through the backup API (locks held, WAL handled by SQLite)."""
    connection.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target, timeout=30)
    try:
        src.backup(dst, pages=-1)
    finally:
        dst.close()
        src.close()
    os.chmod(target, 0o600)


# ---------------------------------------------------------------- PostgreSQL


def _safe_stderr(text: str) -> str:
    """pg_dump / pg_restore's message without DETAIL lines, which can quote a row's values (a key that conflicts)."""
    lines = [line for line in text.strip().splitlines() if "DETAIL" not in line and "Key (" not in line]
    return "\n".join(lines)[-500:]


def pg_binary(name: str) -> str:
    """pg_dump / pg_restore: RELAIS_PG_BIN_DIR, else the newest /usr/lib/postgresql/*/bin (Debian), else PATH."""
    folders = [os.environ["RELAIS_PG_BIN_DIR"]] if os.environ.get("RELAIS_PG_BIN_DIR") else []
    folders += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()]
    )[::-1]
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise DatabaseError(f"{name} not found: apt-get install postgresql-client (or set RELAIS_PG_BIN_DIR)")


def _pg_params() -> dict[str, str]:
    s = connection.settings_dict
    params = {
        "dbname": str(s["NAME"]),
        "user": str(s.get("USER") or ""),
        "host": str(s.get("HOST") or ""),
        "port": str(s.get("PORT") or ""),
    }
    return {k: v for k, v in params.items() if v}


def pg_env() -> dict[str, str]:
    """The environment pg_dump / pg_restore connect with: the configured database, the password never in argv."""
    s = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    names = {"dbname": "PGDATABASE", "user": "PGUSER", "host": "PGHOST", "port": "PGPORT"}
    env.update({names[k]: v for k, v in _pg_params().items()})
    if s.get("PASSWORD"):
        env["PGPASSWORD"] = str(s["PASSWORD"])
    for option, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY")):
        if (s.get("OPTIONS") or {}).get(option):
            env[variable] = str(s["OPTIONS"][option])
    return env


def pg_connect(**overrides: str) -> Any:
    import psycopg

    s = connection.settings_dict
    params: dict[str, Any] = {**_pg_params(), **overrides, "password": str(s.get("PASSWORD") or "") or None}
    return psycopg.connect(**params, autocommit=True)


_PG_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"


class PgDump:
    """A pg_dump of one exported snapshot, counted in the same snapshot; ``chunks()`` streams its stdout."""

    def __init__(self) -> None:
        self.conn = pg_connect()
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor = self.conn.cursor()
        cursor.execute("SELECT pg_export_snapshot()")
        self.snapshot_id = str(cursor.fetchone()[0])
        cursor.execute(_PG_TABLES)
        self.snapshot = _snapshot_of(cursor, [str(r[0]) for r in cursor.fetchall()])
        self.process: subprocess.Popen[bytes] | None = None

    def chunks(self) -> Iterator[bytes]:
        argv = [pg_binary("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={self.snapshot_id}"]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pg_env())  # noqa: S603
        assert self.process.stdout is not None
        while piece := self.process.stdout.read(PIECE):
            yield piece
        stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
        if self.process.wait() != 0:
            raise DatabaseError(f"pg_dump failed (exit {self.process.returncode}): {_safe_stderr(stderr)}")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.conn.close()


def pg_reset_schema() -> None:
    """Empty the configured database's public schema, so pg_restore recreates every table from the backup."""
    connection.close()
    with pg_connect() as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def pg_restore(*, pieces: Iterator[bytes], on_bytes: Callable[[int], None]) -> None:
    """Feed the custom-format dump to pg_restore (one transaction: all or nothing)."""
    connection.close()
    argv = [
        pg_binary("pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        "--dbname",
        _pg_params()["dbname"],
    ]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=pg_env())  # noqa: S603
    assert process.stdin is not None
    stdin: IO[bytes] = process.stdin
    try:
        for piece in pieces:
            stdin.write(piece)
            on_bytes(len(piece))
        stdin.close()
    except BrokenPipeError:
        pass  # pg_restore stopped on an error: its message follows
    except BaseException:
        process.kill()
        process.wait()
        raise
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.wait() != 0:
        raise DatabaseError(f"pg_restore failed (exit {process.returncode}): {_safe_stderr(stderr)}")


# ---------------------------------------------------------------- both


def current_counts() -> dict[str, int]:
    """Rows of every table of the configured database, by table name (the restore compares them with the backup's)."""
    tables = [t for t in connection.introspection.table_names(include_views=False) if not t.startswith("sqlite_")]
    with connection.cursor() as cursor:
        return _snapshot_of(cursor, tables).tables


def holds_data() -> bool:
    """True when the configured database has rows in any table that makes an installation (pharmacies, staff, ...)."""
    tables = set(connection.introspection.table_names(include_views=False))
    with connection.cursor() as cursor:
        for table in DATA_TABLES:
            if table in tables:
                cursor.execute(f"SELECT 1 FROM {_quote(table)} LIMIT 1")  # noqa: S608 - fixed names
                if cursor.fetchone():
                    return True
    return False


def has_tables() -> bool:
    return bool(connection.introspection.table_names(include_views=False))
