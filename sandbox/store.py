"""What the sandbox accepted: SQLite (WAL) at DATA_DIR/sandbox.sqlite3, one connection behind a lock.

Two views of what arrived:

* ``messages``: every accepted message, keyed (and deduplicated) on its message id (HL7 MSH-10, FHIR Bundle.identifier).
* ``records`` and ``versions``: ONE current record per test, keyed on the test's stable key within its format, with
  every version received for it. The key is what a receiver matches versions on: for HL7 v2 the filler order number
  (OBR-3 EI.1, the same for every version of one test), for FHIR the stable identifier value the sender gives the
  test's resources (the FHIR side chooses it; keep it the same for every version).

Version API (used by sandbox/service.py for HL7 v2 and FHIR alike):

* ``Store.store(Accepted(..., test_key=K, version_status=S))``: the normal path. In ONE transaction: a known message
  id is a duplicate (its first response is replayed, no version is added, even for a retried correction); otherwise
  the version is checked (below) and, if accepted, the message and the version are stored together; if refused,
  nothing is stored but the "rejected" counter, and ``StoreOutcome.refused`` holds the reason (the caller answers AE /
  422 with it; it must not count the rejection again). With ``test_key=""`` (the default) no record is kept, as before.
* ``Store.record_version(*, format, test_key, version_status, message_id, body, received_at=None) -> Version``: the
  same check and insert for a version alone (no message row); raises ``VersionRefused(reason)``.
* ``Store.history(test_key, *, format=None) -> list[Version]``: the versions of one test, oldest first ([] if unknown).
* ``Store.records(*, format=None) -> list[dict]``: the current record of every test (key, format, status, version
  count, current message id, first and last received).

FHIR resources (``fhir_resources``): what the sandbox's FHIR server keeps by conditional update (sandbox.fhir.Resources),
one row per version of each (type, "system|value"). ``Accepted.resource_versions`` are inserted with the message, in the
same transaction (none for a duplicate or a refused version); ``resource_head``, ``resource_history`` and
``resource_summary`` read them; ``reset`` clears them with the rest.

``version_status`` is one of VERSION_STATUSES: "final" (HL7 OBX-11 F; FHIR final), "corrected" (HL7 C; FHIR
corrected/amended), "removed" (HL7 D; FHIR entered-in-error). The rules a receiver applies:

* "final" creates the record of an unknown test (version 1); for a known test it is a new version that replaces the
  current one (a sender re-sending its final result under a new message id; after a removal, a new original).
* "corrected" and "removed" need an existing record that is not removed; otherwise they are refused ("matches no
  original" / "the test was removed"), also when the platform refused the test's original earlier: the sender
  must then send its fix as the original (Relais does: relais.transfer.delivery.received_earlier).
"""

from __future__ import annotations

import json
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
CREATE TABLE IF NOT EXISTS records (
    format TEXT NOT NULL,
    test_key TEXT NOT NULL,
    status TEXT NOT NULL,
    versions INTEGER NOT NULL,
    current_message_id TEXT NOT NULL,
    first_received_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (format, test_key)
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    format TEXT NOT NULL,
    test_key TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    version_status TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (format, test_key, sequence)
);
CREATE TABLE IF NOT EXISTS fhir_resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type TEXT NOT NULL,
    identifier TEXT NOT NULL,
    version INTEGER NOT NULL,
    resource_id TEXT NOT NULL,
    content TEXT NOT NULL,
    resource TEXT NOT NULL,
    UNIQUE (resource_type, identifier, version)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

COUNTERS = ("duplicates", "rejected")
FORMATS = ("hl7v2", "fhir")
VERSION_STATUSES = ("final", "corrected", "removed")
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
    test_key: str = ""  # the test's stable key (see the module docstring); "" keeps no record
    version_status: str = ""  # with a test_key: final | corrected | removed
    # FHIR conditional writes: the resource versions this bundle creates, stored with it (not for a duplicate or a refusal)
    resource_versions: tuple[ResourceVersion, ...] = ()


@dataclass(frozen=True)
class ResourceVersion:
    """One version of one FHIR resource kept by the sandbox's FHIR server (sandbox.fhir.Resources)."""

    resource_type: str
    identifier: str  # "system|value" it was written under
    version: int  # meta.versionId: 1, 2, 3...
    resource_id: str  # the server's id, the same for every version
    content: str  # the resource as sent (canonical JSON), to tell an update that changes nothing
    resource: str  # the version as kept: JSON with id and meta (versionId, lastUpdated)


@dataclass(frozen=True)
class ResourceHead:
    """The current version of a kept FHIR resource."""

    resource_id: str
    versions: int
    content: str


@dataclass(frozen=True)
class StoreOutcome:
    duplicate: bool
    response: str  # the response stored with the first copy of this message id ("" when refused)
    same_body: bool = True  # for a duplicate: whether it repeats the stored body byte for byte
    refused: str = ""  # the version was refused (nothing stored): why
    version: Version | None = None  # the version recorded for a test_key


@dataclass(frozen=True)
class Version:
    """One version of one test's record, as received."""

    format: str
    test_key: str
    sequence: int  # 1 for the first version received, then 2, 3...
    version_status: str  # final | corrected | removed
    message_id: str
    received_at: str  # ISO 8601, UTC
    body: str

    def as_dict(self, *, with_body: bool = False) -> dict[str, Any]:
        data = {
            "format": self.format,
            "test_key": self.test_key,
            "sequence": self.sequence,
            "version_status": self.version_status,
            "message_id": self.message_id,
            "received_at": self.received_at,
        }
        if with_body:
            data["body"] = self.body
        return data


class VersionRefused(ValueError):
    """A correction or removal that matches no original, or follows a removal: the receiver refuses it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        """Insert the message unless its id is known; a known id counts as a duplicate and returns the first response.
        With a test_key, the version is checked and recorded in the same transaction (refused: nothing is stored)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                known = self._db.execute("SELECT 1 FROM messages WHERE message_id = ?", (item.message_id,)).fetchone()
                version = None
                if item.test_key and known is None:
                    try:
                        version = self._record_version(
                            format=item.format,
                            test_key=item.test_key,
                            version_status=item.version_status,
                            message_id=item.message_id,
                            body=item.body,
                            received_at=utc_now_iso(),
                        )
                    except VersionRefused as exc:
                        self._increment("rejected")
                        self._db.execute("COMMIT")
                        return StoreOutcome(duplicate=False, response="", refused=exc.reason)
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
                    self._insert_resource_versions(item.resource_versions)
                    outcome = StoreOutcome(duplicate=False, response=item.response, version=version)
                else:
                    self._increment("duplicates")
                    row = self._db.execute("SELECT response, body FROM messages WHERE message_id = ?", (item.message_id,)).fetchone()
                    outcome = StoreOutcome(duplicate=True, response=row["response"], same_body=row["body"] == item.body)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return outcome

    def record_version(
        self, *, format: str, test_key: str, version_status: str, message_id: str, body: str, received_at: str | None = None
    ) -> Version:
        """Check and record one version of a test (see the module docstring); VersionRefused when a receiver refuses it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self._record_version(
                    format=format,
                    test_key=test_key,
                    version_status=version_status,
                    message_id=message_id,
                    body=body,
                    received_at=received_at or utc_now_iso(),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return version

    def _record_version(self, *, format: str, test_key: str, version_status: str, message_id: str, body: str, received_at: str) -> Version:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}")
        if version_status not in VERSION_STATUSES:
            raise VersionRefused(f"unknown version status {version_status!r} (final, corrected or removed)")
        if not test_key:
            raise VersionRefused("the test has no stable key (order number / identifier)")
        row = self._db.execute("SELECT status, versions FROM records WHERE format = ? AND test_key = ?", (format, test_key)).fetchone()
        if row is None:
            if version_status != "final":
                raise VersionRefused(f"a {version_status} version for test {test_key!r} matches no original: send the original first")
            sequence = 1
            self._db.execute(
                "INSERT INTO records (format, test_key, status, versions, current_message_id, first_received_at, updated_at)"
                " VALUES (?, ?, ?, 1, ?, ?, ?)",
                (format, test_key, version_status, message_id, received_at, received_at),
            )
        else:
            if row["status"] == "removed" and version_status != "final":
                raise VersionRefused(f"test {test_key!r} was removed: a {version_status} version cannot follow a removal")
            sequence = row["versions"] + 1
            self._db.execute(
                "UPDATE records SET status = ?, versions = ?, current_message_id = ?, updated_at = ? WHERE format = ? AND test_key = ?",
                (version_status, sequence, message_id, received_at, format, test_key),
            )
        self._db.execute(
            "INSERT INTO versions (format, test_key, sequence, version_status, message_id, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (format, test_key, sequence, version_status, message_id, received_at, body),
        )
        return Version(format, test_key, sequence, version_status, message_id, received_at, body)

    def history(self, test_key: str, *, format: str | None = None) -> list[Version]:
        """The versions of one test, oldest first; [] for an unknown key."""
        query = "SELECT format, test_key, sequence, version_status, message_id, received_at, body FROM versions WHERE test_key = ?"
        params: tuple[str, ...] = (test_key,)
        if format is not None:
            query += " AND format = ?"
            params += (format,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY format, sequence", params).fetchall()
        return [Version(**dict(row)) for row in rows]

    def records(self, *, format: str | None = None) -> list[dict[str, Any]]:
        """The current record of every test: key, format, status, number of versions, current message id, times."""
        query = "SELECT format, test_key, status, versions, current_message_id, first_received_at, updated_at FROM records"
        params: tuple[str, ...] = ()
        if format is not None:
            query += " WHERE format = ?"
            params = (format,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY first_received_at, test_key", params).fetchall()
        return [dict(row) for row in rows]

    # -- FHIR resources (conditional update): one current resource per type and identifier, every version kept --

    def _insert_resource_versions(self, versions: tuple[ResourceVersion, ...]) -> None:
        self._db.executemany(
            "INSERT INTO fhir_resources (resource_type, identifier, version, resource_id, content, resource) VALUES (?, ?, ?, ?, ?, ?)",
            [(v.resource_type, v.identifier, v.version, v.resource_id, v.content, v.resource) for v in versions],
        )

    def resource_head(self, resource_type: str, identifier: str) -> ResourceHead | None:
        """The current version of the resource written under (type, identifier), None when there is none."""
        with self._lock:
            row = self._db.execute(
                "SELECT resource_id, version, content FROM fhir_resources WHERE resource_type = ? AND identifier = ?"
                " ORDER BY version DESC LIMIT 1",
                (resource_type, identifier),
            ).fetchone()
        return ResourceHead(row["resource_id"], row["version"], row["content"]) if row else None

    def resource_history(self, resource_type: str, identifier: str) -> list[dict[str, Any]]:
        """Every version of one resource, oldest first, as kept (id, meta.versionId, meta.lastUpdated)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT resource FROM fhir_resources WHERE resource_type = ? AND identifier = ? ORDER BY version",
                (resource_type, identifier),
            ).fetchall()
        return [json.loads(row["resource"]) for row in rows]

    def resource_summary(self) -> list[dict[str, Any]]:
        """Every current resource, in the order they were first written: type, identifier, id, versions, status."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.resource_type, r.identifier, r.resource_id, r.version, r.resource FROM fhir_resources r"
                " JOIN (SELECT resource_type, identifier, MAX(version) AS last, MIN(id) AS first FROM fhir_resources"
                " GROUP BY resource_type, identifier) h"
                " ON r.resource_type = h.resource_type AND r.identifier = h.identifier AND r.version = h.last"
                " ORDER BY h.first"
            ).fetchall()
        return [
            {
                "resourceType": row["resource_type"],
                "identifier": row["identifier"],
                "id": row["resource_id"],
                "versions": row["version"],
                "status": json.loads(row["resource"]).get("status", ""),
            }
            for row in rows
        ]

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
            records = self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
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
            "records": records,
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
            self._db.execute("DELETE FROM records")
            self._db.execute("DELETE FROM versions")
            self._db.execute("DELETE FROM fhir_resources")
            self._db.execute("COMMIT")
