"""The sealed audit log: a hash chain over committed events, signed Merkle checkpoints, verification and purge.

The sealer numbers events in the order it sees them committed (``AuditSeal.seq``; an event committed late with a smaller
id simply gets a later seq), so writers never wait on it. Each seal carries the SHA-256 of the event's canonical content
and the chain hash SHA-256(previous chain || content hash). Every ``every_events`` seals, or once the oldest
uncheckpointed seal is ``every_seconds`` old, a checkpoint signs (Ed25519, key outside the database) the segment's
RFC 9162 Merkle root, the chain hash at its end and the previous checkpoint's hash; it is also appended to JSON-lines
files outside the database. ``verify`` re-derives all of it. Retention deletes whole checkpointed segments only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from relais.audit.models import AuditCheckpoint, AuditEvent, AuditPurgedSegment, AuditSeal
from relais.audit.sealcrypto import (
    CHECKPOINT_FIELDS,
    COLUMNS,
    GENESIS,
    _b64,
    _time_text,
    _unb64,
    canonical,
    chain,
    check_signature,
    checkpoint_body,
    content_hash,
    key_id,
    merkle_root,
    public_key_bytes,
)

_SELECT_EVENT = ", ".join(f"e.{c}" for c in COLUMNS)
STATUS_COUNT_CAP = 10_000  # seal_status counts unsealed events up to this many
_LOCK_ID = 0x52454C4149534C  # PostgreSQL advisory lock serialising sealers ("RELAISL")


# ---------------------------------------------------------------- configuration and keys


@dataclass(frozen=True)
class SealConfig:
    every_events: int
    every_seconds: int
    delay_seconds: int
    files: tuple[Path, ...]

    @property
    def horizon(self) -> timedelta:
        """How far back an incremental round looks for late commits; a full scan covers the rest."""
        return timedelta(seconds=max(3600, 2 * self.delay_seconds))


def seal_config() -> SealConfig:
    raw = getattr(settings, "RELAIS_AUDIT_SEAL", {})
    return SealConfig(
        every_events=max(1, int(raw.get("every_events", 1000))),
        every_seconds=max(1, int(raw.get("every_seconds", 60))),
        delay_seconds=max(0, int(raw.get("delay_seconds", 300))),
        files=tuple(Path(f) for f in raw.get("files", ()) if f),
    )


def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_unb64(settings.RELAIS_AUDIT_SIGNING_KEY))


def trusted_keys() -> dict[str, bytes]:
    """key id -> raw public key: the current signing key's and the former ones still trusted."""
    keys = [public_key_bytes(signing_key().public_key())]
    keys += [_unb64(k) for k in getattr(settings, "RELAIS_AUDIT_TRUSTED_PUBLIC_KEYS", [])]
    return {key_id(k): k for k in keys}


def db_time(value: datetime) -> Any:
    """A datetime as the raw cursor of this database compares it with stored values."""
    return connection.ops.adapt_datetimefield_value(value)


def canonical_event(event: AuditEvent) -> bytes:
    return canonical([getattr(event, c) for c in COLUMNS])


def checkpoint_line(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """What the external files hold: the signed fields, the hash, the signature and the public key."""
    fields = json.loads(checkpoint_body(_cp_fields(checkpoint)))
    keys = trusted_keys()
    fields.update(
        checkpoint_hash=checkpoint.checkpoint_hash,
        signature=checkpoint.signature,
        public_key=_b64(keys[checkpoint.key_id]) if checkpoint.key_id in keys else "",
    )
    return fields


def _cp_fields(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {name: getattr(checkpoint, name) for name in CHECKPOINT_FIELDS}


def _write_checkpoint(*, seq_first: int, seq_last: int, now: datetime) -> AuditCheckpoint:
    rows = list(AuditSeal.objects.filter(seq__gte=seq_first, seq__lte=seq_last).order_by("seq").values_list("content_hash", "chain_hash"))
    previous = AuditCheckpoint.objects.order_by("-seq_last").values_list("checkpoint_hash", flat=True).first() or GENESIS
    key = signing_key()
    fields: dict[str, Any] = {
        "seq_first": seq_first,
        "seq_last": seq_last,
        "count": len(rows),
        "merkle_root": merkle_root([bytes.fromhex(c) for c, _ in rows]).hex(),
        "chain_hash": rows[-1][1],
        "previous_checkpoint_hash": previous,
        "created_at": now,
        "key_id": key_id(public_key_bytes(key.public_key())),
    }
    body = checkpoint_body(fields)
    return AuditCheckpoint.objects.create(**fields, checkpoint_hash=hashlib.sha256(body).hexdigest(), signature=key.sign(body).hex())


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(line + "\n" for line in lines).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoint_file(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sync_checkpoint_files() -> int:
    """Append to each external file the checkpoints it lacks after its last line (a crash between commit and append)."""
    appended = 0
    keys = trusted_keys()
    for path in seal_config().files:
        lines = read_checkpoint_file(path)
        after = max((int(line.get("seq_last", 0)) for line in lines), default=0)
        missing = AuditCheckpoint.objects.filter(seq_last__gt=after).order_by("seq_last")
        # Only what this key holder signed is copied: a row forged in the database alone never reaches the files.
        good = [c for c in missing if check_signature(_cp_fields(c), c.signature, keys)]
        if good:
            _append(path, [json.dumps(checkpoint_line(c), sort_keys=True) for c in good])
            os.chmod(path, 0o600)
            appended += len(good)
    return appended


# ---------------------------------------------------------------- sealing


@dataclass
class SealReport:
    sealed: int = 0
    checkpoints: int = 0


def _unsealed_sql(*, incremental: bool) -> str:
    where = "NOT EXISTS (SELECT 1 FROM audit_auditseal s WHERE s.event_id = e.id)"
    if incremental:
        where += " AND (e.id > %s OR e.occurred_at >= %s)"
    return f"SELECT {_SELECT_EVENT} FROM audit_auditevent e WHERE {where} ORDER BY e.id LIMIT %s"  # noqa: S608 - fixed names


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])


def _seal_batch(*, limit: int, now: datetime, full: bool, cfg: SealConfig) -> int:
    last = AuditSeal.objects.order_by("-seq").values_list("seq", "chain_hash", "event_id").first()
    seq, previous, last_event = last or (0, GENESIS, 0)
    with connection.cursor() as cursor:
        params: list[Any] = [] if full else [last_event, db_time(now - cfg.horizon)]
        cursor.execute(_unsealed_sql(incremental=not full), [*params, limit])
        rows = cursor.fetchall()
    seals = []
    for row in rows:
        seq += 1
        digest = content_hash(canonical(row))
        previous = chain(previous, digest)
        seals.append(AuditSeal(seq=seq, event_id=row[0], content_hash=digest, chain_hash=previous, sealed_at=now))
    AuditSeal.objects.bulk_create(seals, batch_size=1000)
    return len(seals)


def _checkpoint_due(*, now: datetime, cfg: SealConfig, tail: bool) -> int:
    written = 0
    while True:
        done = AuditCheckpoint.objects.order_by("-seq_last").values_list("seq_last", flat=True).first() or 0
        top = AuditSeal.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        if top <= done:
            return written
        if top - done >= cfg.every_events:
            _write_checkpoint(seq_first=done + 1, seq_last=done + cfg.every_events, now=now)
        else:
            oldest = AuditSeal.objects.filter(seq=done + 1).values_list("sealed_at", flat=True).first()
            if not tail and oldest is not None and oldest > now - timedelta(seconds=cfg.every_seconds):
                return written
            _write_checkpoint(seq_first=done + 1, seq_last=top, now=now)
        written += 1


def seal_pending(*, limit: int = 1000, full: bool = True, checkpoint: bool = False, now: datetime | None = None) -> SealReport:
    """Seal every committed unsealed event, write the checkpoints due (``checkpoint``: also one for the tail), copy them out.

    ``full=False`` only looks at events newer than the last sealed one or recent ones (the worker's cheap rounds)."""
    cfg = seal_config()
    report = SealReport()
    collisions = 0
    while True:
        moment = now or timezone.now()
        try:
            with transaction.atomic():
                _lock()
                sealed = _seal_batch(limit=limit, now=moment, full=full, cfg=cfg)
                written = _checkpoint_due(now=moment, cfg=cfg, tail=checkpoint and sealed < limit)
        except IntegrityError:
            # Another sealer took the same sequence numbers first (SQLite has no advisory lock): read again and go on.
            collisions += 1
            if collisions > 5:
                raise
            continue
        report.sealed += sealed
        report.checkpoints += written
        if sealed < limit:
            break
    if cfg.files:
        sync_checkpoint_files()
    return report


# ---------------------------------------------------------------- status (cheap, for pages)


@dataclass(frozen=True)
class SealStatus:
    sealed_events: int
    unsealed_events: int
    oldest_unsealed_at: datetime | None
    last_checkpoint_seq: int | None
    last_checkpoint_at: datetime | None
    last_checkpoint_root: str | None
    last_checkpoint_key_id: str | None
    healthy: bool


def seal_status(*, now: datetime | None = None) -> SealStatus:
    """A few indexed queries, no verification: unsealed events are looked for among the recent ones only."""
    now = now or timezone.now()
    cfg = seal_config()
    last = AuditSeal.objects.order_by("-seq").values_list("seq", "event_id").first()
    top, last_event = last or (0, 0)
    purged = sum(b - a + 1 for a, b in AuditPurgedSegment.objects.values_list("seq_first", "seq_last"))
    horizon = db_time(now - cfg.horizon)
    # Two single-range reads (newer than the last sealed id; recent by time), each bounded, so a database that was
    # never sealed (10 million events) answers in milliseconds: the count stops at STATUS_COUNT_CAP.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM audit_auditevent e WHERE e.id > %s "
            "AND NOT EXISTS (SELECT 1 FROM audit_auditseal s WHERE s.event_id = e.id) LIMIT %s) AS newer",
            [last_event, STATUS_COUNT_CAP],
        )
        count = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT e.occurred_at FROM audit_auditevent e WHERE e.id > %s "
            "AND NOT EXISTS (SELECT 1 FROM audit_auditseal s WHERE s.event_id = e.id) ORDER BY e.id LIMIT 1",
            [last_event],
        )
        first_newer = cursor.fetchone()
        cursor.execute(
            "SELECT COUNT(*), MIN(e.occurred_at) FROM audit_auditevent e WHERE e.occurred_at >= %s AND e.id <= %s "
            "AND NOT EXISTS (SELECT 1 FROM audit_auditseal s WHERE s.event_id = e.id)",
            [horizon, last_event],
        )
        late_count, late_oldest = cursor.fetchone()
    count = min(count + int(late_count), STATUS_COUNT_CAP)
    candidates = [raw for raw in (first_newer[0] if first_newer else None, late_oldest) if raw is not None]
    oldest_raw = min(candidates, key=_time_text) if candidates else None
    oldest = datetime.fromisoformat(_time_text(oldest_raw).replace("Z", "+00:00")) if oldest_raw is not None else None
    checkpoint = AuditCheckpoint.objects.order_by("-seq_last").first()
    return SealStatus(
        sealed_events=top - purged,
        unsealed_events=int(count),
        oldest_unsealed_at=oldest,
        last_checkpoint_seq=checkpoint.seq_last if checkpoint else None,
        last_checkpoint_at=checkpoint.created_at if checkpoint else None,
        last_checkpoint_root=checkpoint.merkle_root if checkpoint else None,
        last_checkpoint_key_id=checkpoint.key_id if checkpoint else None,
        healthy=oldest is None or oldest >= now - timedelta(seconds=cfg.delay_seconds),
    )


# ---------------------------------------------------------------- retention: whole sealed segments


def purge_sealed_segments(*, before: datetime, dry_run: bool = False) -> dict[str, Any]:
    """Delete the oldest checkpointed segments whose every event occurred before ``before``; their checkpoints stay.

    Segments go oldest first and the run stops at the first one holding a newer event, so purged segments always form
    a prefix of the chain (what audit_verify expects). One transaction per segment: an interrupted run keeps what it did.
    """
    from relais.audit.services import audit_record  # services imports nothing of seal; kept local to avoid a cycle later

    done_upto = AuditPurgedSegment.objects.order_by("-seq_last").values_list("seq_last", flat=True).first() or 0
    report: dict[str, Any] = {"segments": 0, "events": 0, "first_seq": None, "last_seq": None}
    for checkpoint in AuditCheckpoint.objects.filter(seq_first__gt=done_upto).order_by("seq_last").iterator():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*), MAX(e.occurred_at) FROM audit_auditseal s JOIN audit_auditevent e ON e.id = s.event_id "
                "WHERE s.seq >= %s AND s.seq <= %s",
                [checkpoint.seq_first, checkpoint.seq_last],
            )
            count, newest = cursor.fetchone()
        if newest is not None and _time_text(newest) >= _time_text(before):
            break
        if not dry_run:
            with transaction.atomic():
                AuditPurgedSegment.objects.create(
                    seq_first=checkpoint.seq_first,
                    seq_last=checkpoint.seq_last,
                    checkpoint_hash=checkpoint.checkpoint_hash,
                    purged_at=timezone.now(),
                )
                span = [checkpoint.seq_first, checkpoint.seq_last]
                inner = "SELECT event_id FROM audit_auditseal WHERE seq >= %s AND seq <= %s"
                with connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM audit_auditsubject WHERE event_id IN ({inner})", span)  # noqa: S608 - fixed
                    cursor.execute(f"DELETE FROM audit_auditevent WHERE id IN ({inner})", span)  # noqa: S608 - fixed
                    cursor.execute("DELETE FROM audit_auditseal WHERE seq >= %s AND seq <= %s", span)
        report["segments"] += 1
        report["events"] += int(count)
        report["first_seq"] = report["first_seq"] or checkpoint.seq_first
        report["last_seq"] = checkpoint.seq_last
    if report["segments"] and not dry_run:
        with transaction.atomic():
            audit_record(actor=None, action="audit.purge", detail=dict(report))
    return report
