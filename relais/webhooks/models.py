"""Webhooks and their deliveries. Moved from the api app: the tables keep their names (api_webhook, api_webhookdelivery)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Webhook(models.Model):
    """Where a client wants to be told that one of its screenings was acknowledged or rejected downstream."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("api.ApiClient", on_delete=models.PROTECT, related_name="webhooks")
    url = models.URLField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_webhook"

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.client_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the retry window; visible in the delivery log


class WebhookDelivery(models.Model):
    """One notification to send (outbox row written in the transaction that records the acknowledgement)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # the event id receivers dedupe on
    webhook = models.ForeignKey(Webhook, on_delete=models.PROTECT, related_name="deliveries")
    event = models.CharField(max_length=40)  # screening.acknowledged | screening.rejected
    screening = models.ForeignKey("screenings.Screening", on_delete=models.PROTECT, related_name="+")
    payload = models.JSONField()  # ids and statuses only, never identity
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    error_count = models.PositiveIntegerField(default=0)  # unexpected errors while delivering; failed at the fifth
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "api_webhookdelivery"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="api_webhook_status_5921e6_idx")]

    def __str__(self) -> str:
        return f"{self.event} {self.pk}"
