"""Webhooks: where a client is told that its screenings were acknowledged or rejected downstream.

Register and disable an address; queue one notification per outcome in the transaction that records it (transfer calls
webhook_enqueue_for_outcomes through its outcome hook, registered in WebhooksConfig.ready)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from relais.accounts.models import Role, User
from relais.api.models import ApiClient
from relais.audit.services import audit_record
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.webhooks.addresses import webhook_url_check
from relais.webhooks.models import Webhook, WebhookDelivery


def _may_manage(actor: User, client: ApiClient) -> bool:
    """The pharmacy's admin, or the client itself through the API."""
    return (actor.role == Role.PHARMACY_ADMIN and actor.pharmacy_id == client.pharmacy_id) or actor.pk == client.service_user_id


def webhook_register(*, actor: User, client: ApiClient, url: str) -> Webhook:
    """One active webhook per client: registering a new address replaces the previous one."""
    if not _may_manage(actor, client):
        raise PermissionDenied
    url = webhook_url_check(url)
    with transaction.atomic():
        Webhook.objects.filter(client=client, disabled_at__isnull=True).update(disabled_at=timezone.now())
        webhook = Webhook.objects.create(client=client, url=url, created_by=actor)
        audit_record(actor=actor, action="webhook.register", object_type="apiclient", object_ids=[client.pk, webhook.pk])
    return webhook


def webhook_disable(*, actor: User, webhook: Webhook) -> None:
    if not _may_manage(actor, webhook.client):
        raise PermissionDenied
    with transaction.atomic():
        Webhook.objects.filter(pk=webhook.pk, disabled_at__isnull=True).update(disabled_at=timezone.now())
        audit_record(actor=actor, action="webhook.disable", object_type="apiclient", object_ids=[webhook.client_id, webhook.pk])


# --- Enqueue: one notification per outcome, written in the transaction that records it -----------------------------

EVENTS = {TransferStatus.ACKNOWLEDGED: "screening.acknowledged", TransferStatus.REJECTED: "screening.rejected"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def webhook_enqueue_for_outcomes(*, messages: list[OutboxMessage], now: datetime) -> list[WebhookDelivery]:
    """Queue notifications for messages that outbox_record has just settled at ``now``. At most four queries whatever the batch
    size; two small ones when no recorder of these tests has a webhook."""
    if not connection.in_atomic_block:
        raise RuntimeError("webhook_enqueue_for_outcomes must run in the outcome's transaction")
    # A settled timestamp equal to this call's ``now`` proves this worker's write won (a late lease holder's write is ignored).
    won = OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).filter(
        Q(status=TransferStatus.ACKNOWLEDGED, acknowledged_at=now) | Q(status=TransferStatus.REJECTED, rejected_at=now)
    )
    # Who recorded them first, two columns: most software has no webhook, and then nothing more is read.
    recorders = {by for by in won.values_list("screening__recorded_by_id", flat=True) if by is not None}
    if not recorders:
        return []
    hooks: dict[Any, Webhook] = {
        w.client.service_user_id: w
        for w in Webhook.objects.filter(client__service_user_id__in=recorders, client__revoked_at__isnull=True, disabled_at__isnull=True)
        .select_related("client")
        .order_by("created_at")  # should two be active, the newest wins
    }
    if not hooks:
        return []
    settled = list(won.filter(screening__recorded_by_id__in=list(hooks)).select_related("screening"))
    deliveries = []
    for message in settled:
        webhook = hooks.get(message.screening.recorded_by_id)
        if webhook is None:
            continue
        delivery = WebhookDelivery(
            webhook=webhook, event=EVENTS[TransferStatus(message.status)], screening=message.screening, next_attempt_at=now
        )
        delivery.payload = {
            "event_id": str(delivery.pk),
            "event": delivery.event,
            "occurred_at": now.isoformat(),
            "screening_id": str(message.screening_id),
            "series_id": str(message.series_id),
            "version": message.version,
            "screening_status": message.screening.status,
            "transfer": {
                "status": message.status,
                "message_id": message.message_id,
                "acknowledged_at": _iso(message.acknowledged_at),
                "rejection_reason": message.rejection_reason or None,
            },
        }
        deliveries.append(delivery)
    return WebhookDelivery.objects.bulk_create(deliveries)
