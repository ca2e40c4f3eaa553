from __future__ import annotations

import uuid

from django.db import models


class AuditEvent(models.Model):
    """One access to personal data or one security-relevant action. Append-only (see migration 0002).

    Actor and pharmacy are plain UUIDs, not foreign keys: events outlive what they describe.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.UUIDField(null=True)  # indexed with id: audit_event_actor
    actor_label = models.CharField(max_length=254, blank=True)
    actor_role = models.CharField(max_length=32, blank=True)
    pharmacy_id = models.UUIDField(null=True)  # indexed with id: audit_event_pharmacy
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_ids = models.JSONField(default=list)
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    channel = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Pages list one pharmacy's or one account's events newest first: PostgreSQL walked the primary key backwards
            # filtering on a single-column index's column, reading the whole table for a quiet pharmacy or account.
            models.Index(fields=["pharmacy_id", "id"], name="audit_event_pharmacy"),
            models.Index(fields=["actor_id", "id"], name="audit_event_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"


class AuditSubject(models.Model):
    """One (event, object id) pair: answers "who touched this object" from an index, on SQLite and PostgreSQL alike.

    Written with its event, in the same transaction; append-only like the events (migration 0003)."""

    event_id = models.BigIntegerField()
    object_id = models.UUIDField()

    class Meta:
        indexes = [models.Index(fields=["object_id", "event_id"], name="audit_subject_object")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.object_id}"


class AuditSeal(models.Model):
    """An event's place in the sealed chain: seq is the order the sealer saw it committed, not its id.

    content_hash = SHA-256 of the event's canonical content; chain_hash = SHA-256(previous chain_hash || content_hash).
    Append-only (migration 0004): only rows of a purged segment may be deleted."""

    seq = models.BigIntegerField(unique=True)
    event_id = models.BigIntegerField(unique=True)
    content_hash = models.CharField(max_length=64)
    chain_hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"seal {self.seq} event {self.event_id}"


class AuditCheckpoint(models.Model):
    """A signed summary of the segment seq_first..seq_last: Merkle root (RFC 9162) of its content hashes, the chain
    hash at seq_last and the previous checkpoint's hash. Also appended to files outside the database. Append-only."""

    seq_first = models.BigIntegerField(unique=True)
    seq_last = models.BigIntegerField(unique=True)
    count = models.IntegerField()
    merkle_root = models.CharField(max_length=64)
    chain_hash = models.CharField(max_length=64)
    previous_checkpoint_hash = models.CharField(max_length=64)
    checkpoint_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["seq_last"]

    def __str__(self) -> str:
        return f"checkpoint {self.seq_first}-{self.seq_last}"


class AuditPurgedSegment(models.Model):
    """Permit for deleting one whole checkpointed segment's events, subjects and seals (retention).

    Inserted in the purge's own transaction; the delete triggers only let through rows whose seq it covers."""

    seq_first = models.BigIntegerField(unique=True)
    seq_last = models.BigIntegerField(unique=True)
    checkpoint_hash = models.CharField(max_length=64, unique=True)
    purged_at = models.DateTimeField()

    class Meta:
        ordering = ["seq_last"]

    def __str__(self) -> str:
        return f"purged {self.seq_first}-{self.seq_last}"
