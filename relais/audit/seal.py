"""The sealed audit log: a hash chain over committed events, signed Merkle checkpoints, verification and purge.

The sealer numbers events in the order it sees them committed (``AuditSeal.seq``; an event committed late with a smaller
id simply gets a later seq), so writers never wait on it. Each seal carries the SHA-256 of the event's canonical content
and the chain hash SHA-256(previous chain || content hash). Every ``every_events`` seals, or once the oldest
uncheckpointed seal is ``every_seconds`` old, a checkpoint signs (Ed25519, key outside the database) the segment's
RFC 9162 Merkle root, the chain hash at its end and the previous checkpoint's hash; it is also appended to JSON-lines
files outside the database. ``verify`` re-derives all of it. Retention deletes whole checkpointed segments only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from relais.audit.models import AuditCheckpoint, AuditEvent, AuditPurgedSegment, AuditSeal

GENESIS = "0" * 64  # the chain hash before seq 1 and the previous hash of the first checkpoint
COLUMNS = (
    "id",
    "public_id",
    "occurred_at",
    "actor_id",
    "actor_label",
    "actor_role",
    "pharmacy_id",
    "action",
    "object_type",
    "object_ids",
    "detail",
    "request_id",
    "client_ip",
    "channel",
)
_SELECT_EVENT = ", ".join(f"e.{c}" for c in COLUMNS)
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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip().encode())


def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_unb64(settings.RELAIS_AUDIT_SIGNING_KEY))


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()


def trusted_keys() -> dict[str, bytes]:
    """key id -> raw public key: the current signing key's and the former ones still trusted."""
    keys = [public_key_bytes(signing_key().public_key())]
    keys += [_unb64(k) for k in getattr(settings, "RELAIS_AUDIT_TRUSTED_PUBLIC_KEYS", [])]
    return {key_id(k): k for k in keys}


# ---------------------------------------------------------------- canonical content and hashes


def _uuid_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(uuid.UUID(str(value)))  # SQLite stores 32 hex digits


def _time_text(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # naive values from SQLite are UTC (USE_TZ)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def canonical(row: Sequence[Any]) -> bytes:
    """Deterministic serialisation of an event's columns, in COLUMNS order, as read raw from either database."""
    (event_id, public_id, occurred_at, actor_id, label, role, pharmacy_id, action, otype, oids, detail, rid, ip, chan) = row
    content = {
        "id": int(event_id),
        "public_id": _uuid_text(public_id),
        "occurred_at": _time_text(occurred_at),
        "actor_id": _uuid_text(actor_id),
        "actor_label": label,
        "actor_role": role,
        "pharmacy_id": _uuid_text(pharmacy_id),
        "action": action,
        "object_type": otype,
        "object_ids": _json_value(oids),
        "detail": _json_value(detail),
        "request_id": rid,
        "client_ip": None if ip is None else str(ip),
        "channel": chan,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_event(event: AuditEvent) -> bytes:
    return canonical([getattr(event, c) for c in COLUMNS])


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def chain(previous: str, content_digest: str) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(content_digest)).digest().hex()


# ---------------------------------------------------------------- Merkle tree (RFC 9162, section 2.1)


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _root_of(nodes: list[bytes]) -> bytes:
    # Pairing level by level and lifting the odd last node gives the RFC's split at the largest power of two below n.
    if not nodes:
        return hashlib.sha256(b"").digest()
    while len(nodes) > 1:
        paired = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            paired.append(nodes[-1])
        nodes = paired
    return nodes[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the leaves' data (here: each event's 32-byte content hash)."""
    return _root_of([leaf_hash(d) for d in leaves])


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)  # largest power of two smaller than n (n > 1)


def _path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) <= 1:
        return []
    k = _split(len(hashes))
    if m < k:
        return [*_path(m, hashes[:k]), _root_of(hashes[k:])]
    return [*_path(m - k, hashes[k:]), _root_of(hashes[:k])]


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1."""
    return _path(index, [leaf_hash(d) for d in leaves])


def verify_inclusion(*, index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2 on the leaf's data."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# ---------------------------------------------------------------- checkpoints


CHECKPOINT_FIELDS = ("seq_first", "seq_last", "count", "merkle_root", "chain_hash", "previous_checkpoint_hash", "created_at", "key_id")


def checkpoint_body(fields: dict[str, Any]) -> bytes:
    """The signed bytes of a checkpoint: its fields as canonical JSON."""
    body = {name: fields[name] for name in CHECKPOINT_FIELDS}
    if not isinstance(body["created_at"], str):
        body["created_at"] = _time_text(body["created_at"])
    body["v"] = 1
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


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


def check_signature(fields: dict[str, Any], signature_hex: str, keys: dict[str, bytes]) -> bool:
    public = keys.get(str(fields.get("key_id")))
    if public is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(bytes.fromhex(signature_hex), checkpoint_body(fields))
    except (InvalidSignature, ValueError):
        return False
    return True


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
        params: list[Any] = [] if full else [last_event, now - cfg.horizon]
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
    while True:
        moment = now or timezone.now()
        with transaction.atomic():
            _lock()
            sealed = _seal_batch(limit=limit, now=moment, full=full, cfg=cfg)
            report.sealed += sealed
            report.checkpoints += _checkpoint_due(now=moment, cfg=cfg, tail=checkpoint and sealed < limit)
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
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), MIN(e.occurred_at) FROM audit_auditevent e "
            "WHERE NOT EXISTS (SELECT 1 FROM audit_auditseal s WHERE s.event_id = e.id) AND (e.id > %s OR e.occurred_at >= %s)",
            [last_event, now - cfg.horizon],
        )
        count, oldest_raw = cursor.fetchone()
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
