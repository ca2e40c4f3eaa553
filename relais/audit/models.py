from __future__ import annotations

import uuid

from django.db import models


class AuditEvent(models.Model):
    """One access to personal data or one security-relevant action. Append-only (see migration 0002).

    Actor and pharmacy are plain UUIDs, not foreign keys: events outlive what they describe.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.UUIDField(null=True, db_index=True)
    actor_label = models.CharField(max_length=254, blank=True)
    actor_role = models.CharField(max_length=32, blank=True)
    pharmacy_id = models.UUIDField(null=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_ids = models.JSONField(default=list)
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    channel = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["id"]

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
