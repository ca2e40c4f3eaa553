from __future__ import annotations

import uuid

from django.db import models

from relais.accounts.models import Pharmacy, User
from relais.core.fields import EncryptedTextField


class ApiClient(models.Model):
    """Pharmacy software allowed to submit for one pharmacy. Acts through its own technical user,
    so every service call and audit event names it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # the client_id
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="api_clients")
    name = models.CharField(max_length=200)
    service_user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="api_client")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"API client {self.name} ({self.pk})"


class ApiClientKey(models.Model):
    """A client's public key (EC P-256 or RSA >= 2048). Only public keys are stored; two may be active during rotation."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="keys")
    kid = models.CharField(max_length=64, db_index=True)  # SHA-256 thumbprint of the public key (hex)
    public_key_pem = models.TextField()
    algorithm = models.CharField(max_length=8)  # ES256 | RS256
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "kid"], name="one_key_once_per_client")]

    def __str__(self) -> str:
        return f"key {self.kid[:12]} of {self.client_id}"


class UsedAssertion(models.Model):
    """A client assertion's jti, kept until the assertion would have expired, so it cannot be replayed."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    jti = models.CharField(max_length=200)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "jti"], name="assertion_used_once")]

    def __str__(self) -> str:
        return self.jti


class AccessToken(models.Model):
    """Only the SHA-256 of the bearer token is stored: a database dump lets nobody act as the client."""

    token_hash = models.CharField(max_length=64, primary_key=True)
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    # The key whose assertion obtained the token: revoking that key ends the token at once.
    key = models.ForeignKey(ApiClientKey, null=True, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"token of {self.client_id}"


class Webhook(models.Model):
    """Where a client wants to be told that one of its screenings was acknowledged or rejected downstream."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="webhooks")
    url = models.URLField(max_length=500)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

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
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} {self.pk}"


class IdempotentResponse(models.Model):
    """The first successful answer to a request sent with an Idempotency-Key, replayed on retries (kept 24 h)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)  # SHA-256 of method, path and body
    status_code = models.PositiveIntegerField()
    body = EncryptedTextField()  # answers may quote submitted values
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_once_per_client")]

    def __str__(self) -> str:
        return f"idempotent answer {self.key}"
