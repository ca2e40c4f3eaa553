from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import User


class AlertKind(models.TextChoices):
    VOLUME = "volume", _("Many more patient records read than usual")
    OFF_HOURS = "off_hours", _("Patient records read outside opening hours")
    FOREIGN_PATIENT = "foreign_patient", _("Records read of patients never tested at the pharmacy")
    BIRTH_DATE = "birth_date", _("Repeated wrong dates of birth on result links")
    NEW_KEY_BULK = "new_key_bulk", _("A new API key reading in bulk")


class Alert(models.Model):
    """One unusual access found by the rules (relais/oversight/rules.py) over one window, with the events behind it.

    ``key`` (kind, subject, window) is unique: running the rules again over the same window updates, never duplicates."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    key = models.CharField(max_length=200, unique=True)
    actor_id = models.UUIDField(null=True, blank=True)  # the staff account or the API client's service account
    actor_label = models.CharField(max_length=254, blank=True)
    api_client_id = models.UUIDField(null=True, blank=True)
    pharmacy_id = models.UUIDField(null=True, blank=True, db_index=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    figures = models.JSONField(default=dict)
    event_ids = models.JSONField(default=list)  # audit event ids (capped; figures["events"] counts them all)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["acknowledged_at", "created_at"], name="oversight_alert_open")]

    def __str__(self) -> str:
        return f"alert {self.kind} {self.pk}"
