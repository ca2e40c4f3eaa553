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
