"""A breach case (what could have been exposed, counted, never named) and the Art. 34 letters it prepares."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import Pharmacy, User
from relais.patients.models import Patient


class Selector(models.TextChoices):
    ACCOUNT = "account", _("A staff account")
    API_CLIENT = "api_client", _("A connected software (API client)")
    PHARMACY = "pharmacy", _("One pharmacy's data")
    KEY_ID = "key_id", _("A data encryption key")
    ALL = "all", _("All data (database or backup)")


class BreachCase(models.Model):
    """One run of breach_report: the window, what was compromised, and the figures (counts and ids only)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    selector = models.CharField(max_length=16, choices=Selector.choices)
    # An account's or client's UUID, a FINESS or a key id: never a patient's identity.
    selector_ref = models.CharField(max_length=64, blank=True)
    since = models.DateTimeField()
    until = models.DateTimeField()
    discovered_at = models.DateTimeField()
    nature = models.TextField(blank=True)  # the operator's own words, added to the generated description
    measures = models.TextField(blank=True)
    report = models.JSONField(default=dict)  # the report as printed by --json
    draft_dir = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"breach case {self.pk}"


class LetterStatus(models.TextChoices):
    DRAFT = "draft", _("Draft, waiting for approval")
    APPROVED = "approved", _("Approved")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    NO_CONTACT = "no_contact", _("No email or phone: contact the patient another way")


class BreachLetter(models.Model):
    """The Art. 34 letter to one patient. Its text is rendered from the case and the pharmacy when shown or sent, and
    addressed through the patient's encrypted contact only at send time: the row holds no identity and no text."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Lean indexes, a million rows are written at once: case and pharmacy are looked up through breach_letter_case_pharmacy.
    case = models.ForeignKey(BreachCase, on_delete=models.PROTECT, related_name="letters", db_index=False)
    # A purged patient can no longer be written to: the letter goes with the record (indexed for that cascade).
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="+", db_index=False)
    status = models.CharField(max_length=16, choices=LetterStatus.choices, default=LetterStatus.DRAFT)
    created_at = models.DateTimeField(default=timezone.now)
    approved_at = models.DateTimeField(null=True, blank=True)
    # Not indexed: accounts are deactivated, not deleted, so nothing looks letters up by approver.
    approved_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False)
    # Set when someone asks for the approved letters to go out: only then does the worker claim them.
    send_requested_at = models.DateTimeField(null=True, blank=True)
    channel = models.CharField(max_length=8, blank=True)  # email or sms, chosen from the patient's contact at send time
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    handed_off_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    provider_id = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["case", "pharmacy", "status"], name="breach_letter_case_pharmacy"),
            models.Index(fields=["status", "next_attempt_at"], name="breach_letter_due"),
        ]

    def __str__(self) -> str:
        return f"breach letter {self.pk} ({self.status})"
