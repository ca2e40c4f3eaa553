"""Re-derive the sealed audit log and name the first damage: every hash, the chain, Merkle roots, signatures, files.

Streaming and batched (keyset pages over the seals joined to their events), so memory stays flat at 10 million events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from relais.audit.models import AuditCheckpoint, AuditPurgedSegment
from relais.audit.seal import (
    _SELECT_EVENT,
    CHECKPOINT_FIELDS,
    GENESIS,
    _time_text,
    canonical,
    chain,
    check_signature,
    checkpoint_body,
    db_time,
    merkle_root,
    read_checkpoint_file,
    seal_config,
    trusted_keys,
)

MODIFIED = "modified event"
DELETED = "deleted event"
INSERTED = "inserted event"
REORDERED = "reordered events"
FORGED = "forged checkpoint"
MISSING = "missing checkpoint"
UNSEALED = "unsealed events older than the sealing delay"
KINDS = (MODIFIED, DELETED, INSERTED, REORDERED, FORGED, MISSING, UNSEALED)
MAX_PROBLEMS = 1000  # enough to describe any damage; a wholesale rewrite would otherwise fill memory


@dataclass(frozen=True)
class Problem:
    kind: str
    seq: int
    detail: str


@dataclass
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    events: int = 0
    checkpoints: int = 0
    purged_segments: int = 0
    first_seq: int = 0
    last_seq: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.seq, KINDS.index(p.kind))) if self.problems else None

    def add(self, kind: str, seq: int, detail: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(kind, seq, detail))

    def as_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "purged_segments": self.purged_segments,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "first_problem": asdict(first) if first else None,
            "problems": [asdict(p) for p in sorted(self.problems, key=lambda p: (p.seq, KINDS.index(p.kind)))],
        }


def _checkpoints(report: VerifyReport, keys: dict[str, bytes]) -> list[dict[str, Any]]:
    """The database's checkpoints, each checked for its signature and its link to the previous one."""
    rows = list(AuditCheckpoint.objects.order_by("seq_last").values(*CHECKPOINT_FIELDS, "checkpoint_hash", "signature"))
    previous_hash, previous_last = GENESIS, 0
    for row in rows:
        computed = hashlib.sha256(checkpoint_body(row)).hexdigest()
        if computed != row["checkpoint_hash"] or not check_signature(row, row["signature"], keys):
            report.add(FORGED, row["seq_first"], f"checkpoint {row['seq_first']}-{row['seq_last']}: signature does not verify")
        if row["seq_first"] != previous_last + 1:
            report.add(MISSING, previous_last + 1, f"no checkpoint covers {previous_last + 1}-{row['seq_first'] - 1}")
        elif row["previous_checkpoint_hash"] != previous_hash:
            report.add(FORGED, row["seq_first"], "checkpoint does not chain to the previous one")
        previous_hash, previous_last = computed, row["seq_last"]
    report.checkpoints = len(rows)
    return rows


def _files(report: VerifyReport, rows: list[dict[str, Any]], keys: dict[str, bytes], now: datetime, delay: timedelta) -> None:
    """Every checkpoint in the database is in each external file and the other way round, identical."""
    in_db = {row["seq_last"]: row for row in rows}
    for path in seal_config().files:
        try:
            lines = read_checkpoint_file(path)
        except (OSError, ValueError) as exc:
            report.add(MISSING, 1, f"{path}: unreadable ({exc.__class__.__name__})")
            continue
        in_file = {}
        for line in lines:
            seq_last = int(line.get("seq_last", 0))
            in_file[seq_last] = line
            fields = {name: line.get(name) for name in CHECKPOINT_FIELDS}
            if hashlib.sha256(checkpoint_body(fields)).hexdigest() != line.get("checkpoint_hash") or not check_signature(
                fields, str(line.get("signature", "")), keys
            ):
                report.add(FORGED, int(line.get("seq_first", 0)), f"{path}: checkpoint ending at {seq_last} does not verify")
            elif seq_last not in in_db:
                report.add(
                    MISSING, int(line["seq_first"]), f"checkpoint {line['seq_first']}-{seq_last} is in {path} but not in the database"
                )
            elif in_db[seq_last]["checkpoint_hash"] != line.get("checkpoint_hash"):
                report.add(FORGED, int(line["seq_first"]), f"checkpoint ending at {seq_last} differs from {path}")
        copied_upto = max(in_file, default=0)
        for seq_last, row in in_db.items():
            # The newest checkpoints may not be copied yet (commit, then append); older than the delay they must be.
            if seq_last not in in_file and (seq_last < copied_upto or row["created_at"] < now - delay):
                report.add(MISSING, row["seq_first"], f"checkpoint {row['seq_first']}-{seq_last} is not in {path}")


def _purged(report: VerifyReport, rows: list[dict[str, Any]]) -> int:
    """Purged segments must be whole signed segments forming a prefix of the chain; returns the last purged seq."""
    by_last = {row["seq_last"]: row for row in rows}
    last = 0
    for segment in AuditPurgedSegment.objects.order_by("seq_last").values("seq_first", "seq_last", "checkpoint_hash"):
        checkpoint = by_last.get(segment["seq_last"])
        if segment["seq_first"] != last + 1 or checkpoint is None or checkpoint["checkpoint_hash"] != segment["checkpoint_hash"]:
            report.add(DELETED, segment["seq_first"], f"events {segment['seq_first']}-{segment['seq_last']} purged outside the rules")
        last = segment["seq_last"]
        report.purged_segments += 1
    return last


_STREAM = (
    f"SELECT s.seq, s.event_id, s.content_hash, s.chain_hash, {_SELECT_EVENT} "  # noqa: S608 - fixed names
    "FROM audit_auditseal s LEFT JOIN audit_auditevent e ON e.id = s.event_id WHERE s.seq > %s ORDER BY s.seq LIMIT %s"
)


class _Segments:
    """Checks each checkpoint's segment as the stream passes its end: count, Merkle root, chain hash."""

    def __init__(self, report: VerifyReport, rows: list[dict[str, Any]], start: int) -> None:
        self.report = report
        self.pending = [row for row in rows if row["seq_last"] >= start]
        self.leaves: list[bytes] = []
        self.damaged = False

    def add(self, seq: int, leaf: bytes, chain_hash: str, damaged: bool) -> None:
        while self.pending and seq > self.pending[0]["seq_last"]:
            self.close(None)
        if not self.pending or seq < self.pending[0]["seq_first"]:
            return  # not under a signed checkpoint (a deleted one, or the tail): reported elsewhere
        self.leaves.append(leaf)
        self.damaged = self.damaged or damaged
        if self.pending and seq == self.pending[0]["seq_last"]:
            self.close(chain_hash)

    def close(self, chain_hash: str | None) -> None:
        row = self.pending.pop(0)
        span = f"{row['seq_first']}-{row['seq_last']}"
        if chain_hash is None or len(self.leaves) != row["count"]:
            if not self.damaged:
                first_missing = row["seq_first"] + len(self.leaves)
                self.report.add(DELETED, first_missing, f"segment {span} holds {len(self.leaves)} of {row['count']} signed events")
        elif merkle_root(self.leaves).hex() != row["merkle_root"] or chain_hash != row["chain_hash"]:
            if not self.damaged:  # rows rewritten with their seals recomputed: only the signed root tells
                self.report.add(MODIFIED, row["seq_first"], f"segment {span} differs from its signed checkpoint")
        self.leaves, self.damaged = [], False


def verify(
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    batch: int = 20000,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check the whole log (or from the segment holding ``since``); the report names every problem found."""
    now = now or timezone.now()
    cfg = seal_config()
    delay = timedelta(seconds=cfg.delay_seconds)
    keys = trusted_keys()
    report = VerifyReport()
    rows = _checkpoints(report, keys)
    _files(report, rows, keys, now, delay)
    start = _purged(report, rows)
    previous = GENESIS
    if start:
        previous = next((r["chain_hash"] for r in rows if r["seq_last"] == start), GENESIS)
    if since is not None:
        # Start after the last checkpoint created before ``since``: its signed chain hash is the trusted starting point.
        earlier = [r for r in rows if r["seq_last"] > start and r["created_at"] < since]
        if earlier:
            start, previous = earlier[-1]["seq_last"], earlier[-1]["chain_hash"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(seq), MAX(sealed_at) FROM audit_auditseal")
        top, last_sealed_raw = cursor.fetchone()
    top = int(top or 0)
    report.first_seq = start + 1
    segments = _Segments(report, rows, start + 1)
    expected, cursor_seq = start + 1, start
    mismatched: dict[int, tuple[tuple[Any, ...], str, int]] = {}
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_STREAM, [cursor_seq, batch])
            page = cursor.fetchall()
        if not page:
            break
        for row in page:
            seq, event_id, stored_content, stored_chain = row[0], row[1], row[2], row[3]
            event = row[4:]
            damaged = False
            if seq != expected:
                report.add(DELETED, expected, f"seals {expected}-{seq - 1} are missing")
                damaged = True
            if event[0] is None:
                report.add(DELETED, seq, f"event {event_id} sealed at {seq} is gone")
                digest, damaged = stored_content, True
            else:
                digest = hashlib.sha256(canonical(event)).hexdigest()
                if digest != stored_content:
                    damaged = True
                    _mismatch(report, mismatched, seq, event, stored_content, event_id)
            link = chain(previous, stored_content)
            if link != stored_chain:
                if not damaged:
                    report.add(REORDERED, seq, f"seal {seq} does not follow seal {seq - 1} in the chain")
                damaged = True
            previous = stored_chain  # resynchronise, so one damage is reported once
            segments.add(seq, bytes.fromhex(digest), stored_chain, damaged)
            expected = seq + 1
            report.events += 1
        cursor_seq = page[-1][0]
        if progress is not None:
            progress(cursor_seq - start, top - start)
    report.last_seq = expected - 1
    while segments.pending:
        segments.close(None)  # signed segments the stream never reached the end of: their last events are gone
    _tail(report, rows, expected, now, cfg.every_seconds, delay)
    _unsealed(report, now, delay, last_sealed_raw, top, since)
    return report


def _mismatch(
    report: VerifyReport,
    mismatched: dict[int, tuple[tuple[Any, ...], str, int]],
    seq: int,
    event: tuple[Any, ...],
    stored: str,
    event_id: int,
) -> None:
    """A content mismatch is a reordering when this row holds what was sealed for another mismatched row, and back."""
    for other_seq, (other_event, other_stored, other_id) in mismatched.items():
        mine_there = hashlib.sha256(canonical((other_id, *event[1:]))).hexdigest() == other_stored
        theirs_here = hashlib.sha256(canonical((event_id, *other_event[1:]))).hexdigest() == stored
        if mine_there and theirs_here:
            report.problems = [p for p in report.problems if not (p.kind == MODIFIED and p.seq == other_seq)]
            report.add(REORDERED, other_seq, f"events sealed at {other_seq} and {seq} swapped their content")
            del mismatched[other_seq]
            return
    if len(mismatched) < MAX_PROBLEMS:
        mismatched[seq] = (event, stored, event_id)
    report.add(MODIFIED, seq, f"event sealed at {seq} no longer matches its hash")


def _tail(report: VerifyReport, rows: list[dict[str, Any]], expected: int, now: datetime, every: int, delay: timedelta) -> None:
    """Seals past the last checkpoint must be younger than a checkpoint period plus the delay."""
    done = rows[-1]["seq_last"] if rows else 0
    if expected - 1 <= done:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT sealed_at FROM audit_auditseal WHERE seq = %s", [done + 1])
        found = cursor.fetchone()
    if found and _time_text(found[0]) < _time_text(now - delay - timedelta(seconds=every)):
        report.add(MISSING, done + 1, f"events {done + 1}-{expected - 1} were sealed but no checkpoint signs them")


def _unsealed(report: VerifyReport, now: datetime, delay: timedelta, last_sealed_raw: Any, top: int, since: datetime | None) -> None:
    """Events without a seal: back-dated before the sealer's last pass, they were inserted; otherwise the sealer is late."""
    limit = _time_text(now - delay)
    last_pass = _time_text(last_sealed_raw) if last_sealed_raw is not None else ""
    sql = "SELECT e.id, e.occurred_at FROM audit_auditevent e WHERE NOT EXISTS (SELECT 1 FROM audit_auditseal s WHERE s.event_id = e.id)"
    params: list[Any] = []
    if since is not None:
        sql += " AND e.occurred_at >= %s"
        params.append(db_time(since))
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY e.id", params)
        found = cursor.fetchmany(MAX_PROBLEMS)
    for event_id, occurred_raw in found:
        occurred = _time_text(occurred_raw)
        if occurred >= limit:
            continue  # the sealer still has time
        with connection.cursor() as cursor:
            cursor.execute("SELECT seq FROM audit_auditseal WHERE event_id > %s ORDER BY event_id LIMIT 1", [event_id])
            after = cursor.fetchone()
        seq = int(after[0]) if after else top + 1
        if last_pass and occurred < _time_text(datetime.fromisoformat(last_pass.replace("Z", "+00:00")) - delay):
            report.add(INSERTED, seq, f"event {event_id} is not in the chain though the sealer passed after its time")
        else:
            report.add(UNSEALED, seq, f"event {event_id} is still unsealed after the sealing delay")
