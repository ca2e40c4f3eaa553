"""The one place audit events are written. Callers must already be inside the access's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.utils import timezone

from relais.audit.models import AuditEvent, AuditSubject
from relais.core import bulk
from relais.core.context import current_context


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class AuditError(RuntimeError):
    """The audit event could not be written, so the access it describes must not happen."""


def _event(
    *,
    actor: Any | None,
    action: str,
    object_type: str,
    object_ids: Iterable[object],
    pharmacy_id: uuid.UUID | None,
    detail: dict[str, Any] | None,
) -> dict[str, Any]:
    context = current_context()
    if pharmacy_id is None and actor is not None:
        pharmacy_id = getattr(actor, "pharmacy_id", None)
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    return dict(
        occurred_at=timezone.now(),
        actor_id=user.pk if user is not None else None,
        actor_label=user.email if user is not None else (context.channel or "system"),
        actor_role=getattr(user, "role", ""),
        pharmacy_id=pharmacy_id,
        action=action,
        object_type=object_type,
        object_ids=[str(i) for i in object_ids],
        detail=detail or {},
        request_id=context.request_id,
        client_ip=context.client_ip or None,
        channel=context.channel,
    )


def _subjects(event: AuditEvent) -> list[AuditSubject]:
    return [AuditSubject(event_id=event.pk, object_id=u) for u in dict.fromkeys(filter(None, map(_uuid, event.object_ids)))]


def audit_record(
    *,
    actor: Any | None,
    action: str,
    object_type: str = "",
    object_ids: Iterable[object] = (),
    pharmacy_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    if not connection.in_atomic_block:
        raise AuditError("audit_record must run inside the transaction of the access it records")
    try:
        fields = _event(actor=actor, action=action, object_type=object_type, object_ids=object_ids, pharmacy_id=pharmacy_id, detail=detail)
        event = AuditEvent.objects.create(**fields)
        subjects = _subjects(event)
        if subjects:
            AuditSubject.objects.bulk_create(subjects)
        return event
    except Exception as exc:  # any failure to write means the access is refused
        raise AuditError(f"could not write audit event {action}") from exc


class AuditBuffer:
    """Audit events of many accesses in one transaction, written together by ``flush`` (a batch of tests): the same
    rows audit_record writes, in the same order, with three statements for the whole batch. ``prepare`` computes the
    rows' values beforehand (the intake does it before its write transaction opens)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._prepared: tuple[int, bulk.PreparedDictInsert, list[list[Any]]] | None = None

    def add(
        self,
        *,
        actor: Any | None,
        action: str,
        object_type: str = "",
        object_ids: Iterable[object] = (),
        pharmacy_id: uuid.UUID | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.events.append(
            _event(actor=actor, action=action, object_type=object_type, object_ids=object_ids, pharmacy_id=pharmacy_id, detail=detail)
        )

    def prepare(self) -> None:
        """Compute the database values of the events added so far (flush prepares again if more were added since)."""
        self._prepared = self._values()

    def _values(self) -> tuple[int, bulk.PreparedDictInsert, list[list[Any]]]:
        prep = AuditSubject._meta.get_field("object_id").get_db_prep_save
        subjects = [[prep(u, connection) for u in dict.fromkeys(filter(None, map(_uuid, e["object_ids"])))] for e in self.events]
        return len(self.events), bulk.PreparedDictInsert(AuditEvent, self.events, by="public_id"), subjects

    def flush(self) -> None:
        """Write the buffered events inside the caller's transaction (before it commits, or the accesses must not count)."""
        if not self.events:
            return
        if not connection.in_atomic_block:
            raise AuditError("AuditBuffer.flush must run inside the transaction of the accesses it records")
        try:
            prepared = self._prepared if self._prepared is not None and self._prepared[0] == len(self.events) else self._values()
            _count, insert, subjects = prepared
            ids = insert.execute()
            rows = [(event_id, object_id) for event_id, ids_of in zip(ids, subjects, strict=True) for object_id in ids_of]
            bulk.insert_values(AuditSubject, ["event_id", "object_id"], rows)
        except Exception as exc:
            raise AuditError(f"could not write {len(self.events)} audit events") from exc
        finally:
            self.events, self._prepared = [], None
