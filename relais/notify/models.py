"""Result links given to patients and the messages (email, SMS) that carry them, queued like every background job."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import Pharmacy, User
from relais.core.fields import EncryptedTextField
from relais.patients.models import Patient
from relais.screenings.models import Screening


class ResultLink(models.Model):
    """A random token (only its SHA-256 is kept) that opens one test's result after the date of birth is given."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token_hash = models.CharField(max_length=64, unique=True)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    series_id = models.UUIDField(db_index=True)  # the page always shows the test's latest version
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField()
    failed_attempts = models.PositiveIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    replaced_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"result link {self.pk}"


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")


class NotificationKind(models.TextChoices):
    RESULT = "result", _("Result available")
    CORRECTED = "corrected", _("Result corrected")
    DETAILS_CORRECTED = "details", _("Details corrected")  # the patient's identity, not the result
    REMOVED = "removed", _("Result withdrawn")


class NotificationStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Replaced by a newer message")


class Notification(models.Model):
    """One message to one address. The address and the link are encrypted; the link is erased once sent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    screening = models.ForeignKey(Screening, on_delete=models.PROTECT, related_name="notifications")
    series_id = models.UUIDField(db_index=True)
    link = models.ForeignKey(ResultLink, on_delete=models.PROTECT, related_name="notifications")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    address = EncryptedTextField()
    link_url = EncryptedTextField(blank=True, default="")
    # The patient's retention key when written (set by relais.retention.keys), so the purge can shred the address too.
    retention_key = models.CharField(max_length=32, blank=True, default="", db_index=True)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    error_count = models.PositiveIntegerField(default=0)  # unexpected errors while sending; failed at the fifth
    # Set just before the message goes to the gateway, cleared with its outcome: still set means the worker died in between.
    handed_off_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    provider_id = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"notification {self.pk} ({self.channel}, {self.status})"

    @property
    def masked_address(self) -> str:
        """Enough for the pharmacist to spot a typo, not enough to read out the whole address."""
        address = str(self.address)
        if self.channel == Channel.EMAIL and "@" in address:
            local, _, domain = address.partition("@")
            return f"{local[:1]}•••@{domain}"
        return f"{address[:4]}•••{address[-2:]}" if len(address) > 6 else "•••"
