"""The one place audit events are written. Callers must already be inside the access's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.utils import timezone

from relais.audit.models import AuditEvent, AuditSubject
from relais.core.context import current_context


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class AuditError(RuntimeError):
    """The audit event could not be written, so the access it describes must not happen."""


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
    context = current_context()
    if pharmacy_id is None and actor is not None:
        pharmacy_id = getattr(actor, "pharmacy_id", None)
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    ids = [str(i) for i in object_ids]
    try:
        event = AuditEvent.objects.create(
            occurred_at=timezone.now(),
            actor_id=user.pk if user is not None else None,
            actor_label=user.email if user is not None else (context.channel or "system"),
            actor_role=getattr(user, "role", ""),
            pharmacy_id=pharmacy_id,
            action=action,
            object_type=object_type,
            object_ids=ids,
            detail=detail or {},
            request_id=context.request_id,
            client_ip=context.client_ip or None,
            channel=context.channel,
        )
        subjects = [AuditSubject(event_id=event.pk, object_id=u) for u in dict.fromkeys(filter(None, map(_uuid, ids)))]
        if subjects:
            AuditSubject.objects.bulk_create(subjects)
        return event
    except Exception as exc:  # any failure to write means the access is refused
        raise AuditError(f"could not write audit event {action}") from exc
