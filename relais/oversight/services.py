"""Alerts as auditors and pharmacy admins see them: scoped like the audit log, every read and acknowledgement audited."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.oversight.auditlog import audit_scope
from relais.oversight.models import Alert


def _visible(actor: User) -> QuerySet[Alert]:
    scope = audit_scope(actor)
    return Alert.objects.all() if scope is None else Alert.objects.filter(pharmacy_id=scope)


def alerts_for(*, actor: User, acknowledged: bool = False, limit: int = 200) -> list[Alert]:
    """The newest alerts the actor may see, open ones by default."""
    with transaction.atomic():
        alerts = list(_visible(actor).filter(acknowledged_at__isnull=not acknowledged).order_by("-created_at")[:limit])
        audit_record(
            actor=actor,
            action="audit.alerts_view",
            object_type="alert",
            object_ids=[a.pk for a in alerts],
            pharmacy_id=audit_scope(actor),
            detail={"acknowledged": acknowledged, "shown": len(alerts)},
        )
    return alerts


def open_alert_count(*, actor: User) -> int:
    return int(_visible(actor).filter(acknowledged_at__isnull=True).count())


def alert_get(*, actor: User, alert_id: uuid.UUID | str) -> Alert:
    """Another pharmacy's alert raises Alert.DoesNotExist (views answer 404). Its events' page audits the read."""
    return _visible(actor).get(pk=alert_id)


def alert_acknowledge(*, actor: User, alert_id: uuid.UUID | str) -> Alert:
    with transaction.atomic():
        alert = _visible(actor).select_for_update().get(pk=alert_id)
        if alert.acknowledged_at is None:
            alert.acknowledged_at = timezone.now()
            alert.acknowledged_by = actor
            alert.save(update_fields=["acknowledged_at", "acknowledged_by", "updated_at"])
            audit_record(actor=actor, action="audit.alert_ack", object_type="alert", object_ids=[alert.pk], pharmacy_id=alert.pharmacy_id)
    return alert
