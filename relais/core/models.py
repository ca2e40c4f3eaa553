from __future__ import annotations

from django.db import models


class DataKey(models.Model):
    """A data-encryption key, stored only wrapped (AES-GCM) by a master key from the environment."""

    key_id = models.CharField(max_length=32, primary_key=True)
    wrapped_key = models.CharField(max_length=200)
    master_key_id = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    # A retention key: encrypts the personal data whose retention ends this day; its wrapping also needs a secret kept
    # outside the database (RELAIS_KEY_DIR), destroyed by the purge, so a backup cannot decrypt purged identities.
    expires_on = models.DateField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_id


class ScheduledJob(models.Model):
    """One periodic job (the retention purge, the unusual-access rules): claimed through the leased queue, so one
    run per period however many workers poll it. See relais/core/schedule.py."""

    name = models.CharField(max_length=64, unique=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # when it is next due
    lease_owner = models.CharField(max_length=80, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
