from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import Pharmacy, User
from relais.core.fields import EncryptedTextField
from relais.patients.models import Patient
from relais.screenings.vocab import ANALYTES, RESULTS, SPECIMENS, SYMPTOMS


class Device(models.Model):
    """A rapid test from the EU common list (JRC / DCC value set), with the analytes it detects."""

    device_id = models.CharField(max_length=32, primary_key=True)
    manufacturer = models.CharField(max_length=200)
    name = models.CharField(max_length=300)
    loinc_code = models.CharField(max_length=16)
    analytes = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    # Minutes from swab to reading (the maker's instructions): the test queue counts down to it.
    reading_minutes = models.PositiveSmallIntegerField(default=15)
    source_version = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["manufacturer", "name"]

    def __str__(self) -> str:
        return f"{self.manufacturer}, {self.name} ({self.device_id})"


class ScreeningStatus(models.TextChoices):
    FINAL = "final", _("Final")
    CORRECTED = "corrected", _("Corrected")
    REMOVED = "removed", _("Removed")


class Screening(models.Model):
    """One version of a test record. A correction adds a version; the original stays as it was."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    series_id = models.UUIDField(default=uuid.uuid4, db_index=True, editable=False)
    version = models.PositiveIntegerField(default=1)
    supersedes = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by")
    is_current = models.BooleanField(default=True)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="screenings")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="screenings", db_index=False)  # screening_patient_sampled
    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="+")
    specimen_type = models.CharField(max_length=20, choices=list(SPECIMENS.items()))
    sampled_at = models.DateTimeField()
    # The kit's lot (GS1 AI 10) and expiry (AI 17), scanned from the box or typed; blank when not recorded (older tests).
    kit_lot = models.CharField(max_length=20, blank=True, default="")
    kit_expiry = models.DateField(null=True, blank=True)
    # Symptoms related to the condition tested for, and their onset: asked by the national platform. "" = not asked.
    symptoms = models.CharField(max_length=8, blank=True, default="", choices=list(SYMPTOMS.items()))
    symptom_onset = models.DateField(null=True, blank=True)
    # The pharmacist's confirmation that the patient was given the information notice (loi n° 2020-546, art. 11).
    # None: recorded before the confirmation existed (the old consent box), so not recorded either way.
    information_notice_given = models.BooleanField(null=True)
    # Only tests recorded under the old "no consent" promise: never sent with identity, no certificate. Corrections copy it.
    identity_withheld = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=ScreeningStatus.choices, default=ScreeningStatus.FINAL)
    correction_reason = EncryptedTextField(blank=True, default="")
    recorded_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [
            # Today's list: SQLite cannot use a bare boolean (is_current) as an index equality, so it read the pharmacy's
            # whole history through pharmacy_id; this one ranges over the day. tests/core/test_query_plans.py checks both.
            models.Index(fields=["pharmacy", "recorded_at"], name="screening_pharmacy_recorded"),
            # The earlier-duplicate lookup (same patient, device, sampling time): SQLite preferred pharmacy_id without it.
            models.Index(fields=["patient", "sampled_at"], name="screening_patient_sampled"),
        ]
        constraints = [models.UniqueConstraint(fields=["series_id", "version"], name="one_version_number_per_series")]

    def __str__(self) -> str:
        return f"screening {self.pk} v{self.version}"

    # What every later version of a test copies from the one it corrects (a test recorded under the old "no consent"
    # promise stays pseudonymous: identity_withheld).
    CARRIED_OVER = (
        "device",
        "specimen_type",
        "sampled_at",
        "kit_lot",
        "kit_expiry",
        "symptoms",
        "symptom_onset",
        "information_notice_given",
        "identity_withheld",
    )

    def carried_over(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.CARRIED_OVER}

    @property
    def corrects_details_only(self) -> bool:
        """A corrected version with the same results as the one it replaces: the patient's details were corrected (an
        identity correction re-sends every test), not the result (a result correction must change it). Two queries."""
        if self.status != ScreeningStatus.CORRECTED or self.supersedes_id is None:
            return False
        cached = getattr(self, "_corrects_details_only", None)
        if cached is None:
            mine = sorted(ScreeningResult.objects.filter(screening_id=self.pk).values_list("analyte", "result"))
            before = sorted(ScreeningResult.objects.filter(screening_id=self.supersedes_id).values_list("analyte", "result"))
            cached = self._corrects_details_only = mine == before
        return bool(cached)

    @property
    def transfer(self) -> Any:
        """The latest outbox message of this version (prefetch "outbox" when listing)."""
        messages = list(self.outbox.all())  # type: ignore[attr-defined]
        return max(messages, key=lambda m: m.created_at) if messages else None


class ScreeningResult(models.Model):
    screening = models.ForeignKey(Screening, on_delete=models.PROTECT, related_name="results")
    analyte = models.CharField(max_length=32)
    loinc_code = models.CharField(max_length=16)
    result = models.CharField(max_length=20, choices=list(RESULTS.items()))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["screening", "analyte"], name="one_result_per_analyte")]

    def __str__(self) -> str:
        return f"{self.analyte}={self.result}"

    @property
    def analyte_label(self) -> str:
        return ANALYTES[self.analyte].label if self.analyte in ANALYTES else self.analyte


class KitBarcode(models.Model):
    """A pharmacy's answer to "which catalogue device is this box?" for a GTIN it scanned: asked once, then remembered.

    Per pharmacy: a GTIN is the maker's packaging, and nothing ties it to the EU device list but the pharmacist's word."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.CASCADE, related_name="+")
    gtin = models.CharField(max_length=14)  # GTIN-14, check digit verified
    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pharmacy", "gtin"], name="one_device_per_gtin_per_pharmacy")]

    def __str__(self) -> str:
        return f"{self.gtin} -> {self.device_id}"


class PinnedKit(models.Model):
    """A kit the pharmacy keeps at the top of its device list ("Your kits"), chosen by its administrator."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="+")
    pinned_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    pinned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pharmacy", "device"], name="one_pin_per_device_per_pharmacy")]

    def __str__(self) -> str:
        return f"pin {self.device_id}"
