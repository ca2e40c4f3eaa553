"""What the sandbox accepted: SQLite (WAL) at DATA_DIR/sandbox.sqlite3, one connection behind a lock."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DB_NAME = "sandbox.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    format TEXT NOT NULL CHECK (format IN ('hl7v2', 'fhir')),
    transport TEXT NOT NULL CHECK (transport IN ('mllp', 'https', 'http')),
    received_at TEXT NOT NULL,
    placer TEXT NOT NULL DEFAULT '',
    filler TEXT NOT NULL DEFAULT '',
    result_status TEXT NOT NULL DEFAULT '',
    has_identity INTEGER NOT NULL,
    body TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

COUNTERS = ("duplicates", "rejected")
FORMATS = ("hl7v2", "fhir")
PUBLIC_COLUMNS = ("message_id", "format", "transport", "received_at", "placer", "filler", "result_status", "has_identity")


@dataclass(frozen=True)
class Accepted:
    """One validated message ready to be stored. ``response`` is what the sandbox answers for it (replayed for duplicates)."""

    message_id: str
    format: str
    transport: str
    placer: str
    filler: str
    result_status: str
    has_identity: bool
    body: str
    response: str


@dataclass(frozen=True)
class StoreOutcome:
    duplicate: bool
    response: str  # the response stored with the first copy of this message id
    same_body: bool = True  # for a duplicate: whether it repeats the stored body byte for byte


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Store:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def store(self, item: Accepted) -> StoreOutcome:
        """Insert the message unless its id is known; a known id counts as a duplicate and returns the first response."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO messages (message_id, format, transport, received_at, placer, filler, result_status,"
                    " has_identity, body, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.message_id,
                        item.format,
                        item.transport,
                        utc_now_iso(),
                        item.placer,
                        item.filler,
                        item.result_status,
                        int(item.has_identity),
                        item.body,
                        item.response,
                    ),
                )
                if cursor.rowcount == 1:
                    outcome = StoreOutcome(duplicate=False, response=item.response)
                else:
                    self._increment("duplicates")
                    row = self._db.execute("SELECT response, body FROM messages WHERE message_id = ?", (item.message_id,)).fetchone()
                    outcome = StoreOutcome(duplicate=True, response=row["response"], same_body=row["body"] == item.body)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return outcome

    def count_rejected(self, n: int = 1) -> None:
        with self._lock:
            self._increment("rejected", n)

    def _increment(self, name: str, n: int = 1) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counters = {name: 0 for name in COUNTERS}
            for row in self._db.execute("SELECT name, value FROM counters"):
                counters[row["name"]] = row["value"]
            by_format = {name: 0 for name in FORMATS}
            by_transport: dict[str, int] = {}
            accepted = 0
            for row in self._db.execute("SELECT format, transport, COUNT(*) AS n FROM messages GROUP BY format, transport"):
                by_format[row["format"]] += row["n"]
                by_transport[row["transport"]] = by_transport.get(row["transport"], 0) + row["n"]
                accepted += row["n"]
        return {
            "accepted": accepted,
            "duplicates": counters["duplicates"],
            "rejected": counters["rejected"],
            "by_format": by_format,
            "by_transport": by_transport,
        }

    def messages(self, *, with_body: bool = False, message_id: str | None = None) -> list[dict[str, Any]]:
        columns = ", ".join(PUBLIC_COLUMNS + (("body", "response") if with_body else ()))
        query = f"SELECT {columns} FROM messages"  # noqa: S608 - column names are constants
        params: tuple[str, ...] = ()
        if message_id is not None:
            query += " WHERE message_id = ?"
            params = (message_id,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        result = []
        for row in rows:
            item = dict(row)
            item["has_identity"] = bool(item["has_identity"])
            result.append(item)
        return result

    def reset(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM messages")
            self._db.execute("DELETE FROM counters")
            self._db.execute("COMMIT")
