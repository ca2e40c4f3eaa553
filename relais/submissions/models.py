"""Submissions: a batch of screenings sent through the API or a CSV file, processed item by item."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import Pharmacy, User
from relais.core.fields import EncryptedTextField


class SubmissionKind(models.TextChoices):
    BATCH = "batch", _("API batch")
    CSV = "csv", _("CSV file")


class SubmissionStatus(models.TextChoices):
    QUEUED = "queued", _("Waiting")
    PROCESSING = "processing", _("In progress")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ItemStatus(models.TextChoices):
    ACCEPTED = "accepted", _("Accepted")
    DUPLICATE = "duplicate", _("Duplicate")
    REJECTED = "rejected", _("Rejected")


class Submission(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="submissions")
    submitted_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=8, choices=SubmissionKind.choices)
    status = models.CharField(max_length=16, choices=SubmissionStatus.choices, default=SubmissionStatus.QUEUED)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    file_name = EncryptedTextField(blank=True, default="")  # file names often carry a patient's name
    content = EncryptedTextField(blank=True, default="")  # the uploaded file or batch body, emptied once processed
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    language = models.CharField(max_length=8, default="fr")  # problems are written in the uploader's language
    failure_reason = models.CharField(max_length=300, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # after an unexpected error: not before (null: at once)
    error_count = models.PositiveIntegerField(default=0)  # unexpected errors while recording the file; failed at the fifth
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["submitted_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="submission_idempotency_key_once",
            )
        ]

    def __str__(self) -> str:
        return f"submission {self.pk} ({self.kind})"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.processed * 100 // self.total)


class SubmissionItem(models.Model):
    """What happened to one batch item or CSV row. ``position`` is the batch index or the spreadsheet row number."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ItemStatus.choices)
    screening = models.ForeignKey("screenings.Screening", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    duplicate_of = models.ForeignKey("screenings.Screening", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    errors = EncryptedTextField(blank=True, default="")  # JSON list of {field, message, value}; values may be identity

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["submission", "position"], name="one_outcome_per_item")]

    def __str__(self) -> str:
        return f"item {self.position} of {self.submission_id}: {self.status}"
