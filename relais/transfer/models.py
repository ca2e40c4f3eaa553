from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import Pharmacy
from relais.screenings.models import Screening


def new_message_id() -> str:
    """20 characters (HL7 v2.5.1 MSH-10 limit), random, reused on every retry of the message."""
    return secrets.token_hex(10)


class TransferStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent, awaiting acknowledgement")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    REJECTED = "rejected", _("Rejected")
    SUPERSEDED = "superseded", _("Replaced by a later version")


OPEN_STATUSES = [TransferStatus.PENDING, TransferStatus.SENT]


class OutboxMessage(models.Model):
    """One screening version to deliver to one destination; written in the screening's transaction.

    Holds no personal data: the message is rendered from the screening when it is sent.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message_id = models.CharField(max_length=20, unique=True, default=new_message_id)
    screening = models.ForeignKey(Screening, on_delete=models.PROTECT, related_name="outbox")
    series_id = models.UUIDField(db_index=True)
    version = models.PositiveIntegerField()
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="+")
    # Where and as what it last went out: set by the worker that sends it (empty until then), never when recorded.
    destination = models.CharField(max_length=64)
    message_format = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=TransferStatus.choices, default=TransferStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    error_count = models.PositiveIntegerField(default=0)  # unexpected errors; parked as rejected at the fifth
    rejection_reason = models.CharField(max_length=500, blank=True)
    ack_code = models.CharField(max_length=8, blank=True)
    ack_text = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True, db_index=True)
    rejected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"]), models.Index(fields=["series_id", "version"])]

    def __str__(self) -> str:
        return f"message {self.message_id} ({self.status})"


class DestinationHealth(models.Model):
    """Whether a destination is reachable, kept up to date as outcomes are recorded (services.outbox_record): set when
    a connection failure follows a success, cleared by the next answer. One row per destination; no personal data."""

    name = models.CharField(max_length=64, primary_key=True)
    failing_since = models.DateTimeField(null=True, blank=True)  # first connection failure with no answer after it
    last_error = models.CharField(max_length=500, blank=True)  # the failure that started it (transport text, no patient data)

    def __str__(self) -> str:
        return f"destination {self.name} ({'failing' if self.failing_since else 'reachable'})"
