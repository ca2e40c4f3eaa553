"""A swab taken whose result is not known yet: the test queue (issue 15, item 4).

Not a Screening: a Screening is sent to the national platform and the patient as soon as it is recorded, and nothing may
leave before the result is read. Entering the result turns the row into a Screening (relais.intake's one road) and marks
it done in the same transaction; a cancelled row keeps its reason. Rows go with their patient (CASCADE: an erased or
expired patient leaves no pending test behind) and with the test they became; cancelled or abandoned rows are deleted
by the daily ``queue.purge`` job (relais.testqueue.services.purge)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import models

from relais.accounts.models import Pharmacy, User
from relais.core.fields import EncryptedTextField
from relais.patients.models import Patient
from relais.screenings.models import Device, Screening
from relais.screenings.vocab import SPECIMENS, SYMPTOMS


class PendingTest(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="+")
    # CASCADE: a swab without result is worth nothing without its patient, and must never keep an erased patient alive
    # (PROTECT would make the retention purge fail on every batch holding such a patient).
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="pending_tests")
    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="+")
    specimen_type = models.CharField(max_length=20, choices=list(SPECIMENS.items()))
    sampled_at = models.DateTimeField()
    kit_lot = models.CharField(max_length=20, blank=True, default="")
    kit_expiry = models.DateField(null=True, blank=True)
    symptoms = models.CharField(max_length=8, blank=True, default="", choices=list(SYMPTOMS.items()))
    symptom_onset = models.DateField(null=True, blank=True)
    information_notice_given = models.BooleanField()
    started_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField()
    # Done: the recorded test it became (which holds everything from then on); it goes with that test's retention.
    screening = models.ForeignKey(Screening, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    done_at = models.DateTimeField(null=True, blank=True)
    # Cancelled (invalid test, patient left...): free text, so encrypted like a correction's reason.
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = EncryptedTextField(blank=True, default="")
    closed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["pharmacy", "done_at", "cancelled_at"], name="pendingtest_open")]

    def __str__(self) -> str:
        return f"pending test {self.pk}"  # never the patient

    @property
    def is_open(self) -> bool:
        return self.done_at is None and self.cancelled_at is None

    @property
    def ready_at(self) -> datetime:
        return self.sampled_at + timedelta(minutes=self.device.reading_minutes)
