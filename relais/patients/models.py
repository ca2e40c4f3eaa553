from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import Pharmacy, User
from relais.core import crypto
from relais.core.fields import EncryptedDateField, EncryptedTextField


class Sex(models.TextChoices):
    FEMALE = "F", _("Female")
    MALE = "M", _("Male")
    OTHER = "O", _("Other")
    UNKNOWN = "U", _("Unknown")


class Patient(models.Model):
    """A patient of one pharmacy. Every identity field is encrypted; search goes through blind indexes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="patients")
    last_name = EncryptedTextField()
    first_names = EncryptedTextField()
    sex = EncryptedTextField()
    date_of_birth = EncryptedDateField()
    nir = EncryptedTextField(blank=True, default="")
    address_line = EncryptedTextField(blank=True, default="")
    postcode = EncryptedTextField(blank=True, default="")
    city = EncryptedTextField(blank=True, default="")
    country = EncryptedTextField(blank=True, default="")
    phone = EncryptedTextField(blank=True, default="")
    email = EncryptedTextField(blank=True, default="")
    # Identity reliability (FR Core): True = the pharmacist checked the identity on an identity document (VALI),
    # False = not checked (PROV), None = not recorded (records older than the question).
    identity_verified = models.BooleanField(null=True, default=None)
    # The Latin spelling from the passport's machine-readable zone, for names in a script the ICAO 9303 tables of
    # relais.certificates.transliteration cannot transliterate (CJK, Hebrew...): used for the certificate's fnt/gnt.
    latin_last_name = EncryptedTextField(blank=True, default="")
    latin_first_names = EncryptedTextField(blank=True, default="")
    nir_index = models.CharField(max_length=64, blank=True, db_index=True)
    name_dob_index = models.CharField(max_length=64, db_index=True)
    identity_index = models.CharField(max_length=64, db_index=True)
    # Search (relais.patients.search): truncated blind indexes, a few records per value, each indexed with the pharmacy.
    surname_index = models.CharField(max_length=8, blank=True, default="")
    surname_head_index = models.CharField(max_length=8, blank=True, default="")  # first word of a double name
    surname_tail_index = models.CharField(max_length=8, blank=True, default="")  # last word of a double name
    surname_sound_index = models.CharField(max_length=8, blank=True, default="")  # French phonetic key
    full_name_index = models.CharField(max_length=8, blank=True, default="")  # first first name + last name
    birth_date_index = models.CharField(max_length=8, blank=True, default="")
    phone_index = models.CharField(max_length=8, blank=True, default="")
    # Registered beside a record that looks alike but differs on an identifying field: the pharmacy reviews the pair.
    possible_duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Found to be the same person as another record: its tests moved there; kept for the audit trail, out of searches.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    merged_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The retention key (relais.core.crypto) encrypting the identity: the day its latest test's retention ends; moved to a
    # later day's key when a newer test comes, destroyed by the purge once no row uses it.
    retention_key = models.CharField(max_length=32, blank=True, default="", db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["pharmacy", "created_at"]),
            # Matching looks up one pharmacy's identity or NIR index: without these SQLite picks a single-column index.
            models.Index(fields=["pharmacy", "identity_index"], name="patient_pharmacy_identity"),
            models.Index(fields=["pharmacy", "nir_index"], name="patient_pharmacy_nir"),
            models.Index(fields=["pharmacy", "surname_index"], name="patient_search_surname"),
            models.Index(fields=["pharmacy", "surname_head_index"], name="patient_search_head"),
            models.Index(fields=["pharmacy", "surname_tail_index"], name="patient_search_tail"),
            models.Index(fields=["pharmacy", "surname_sound_index"], name="patient_search_sound"),
            models.Index(fields=["pharmacy", "full_name_index"], name="patient_search_full_name"),
            models.Index(fields=["pharmacy", "birth_date_index"], name="patient_search_birth_date"),
            models.Index(fields=["pharmacy", "phone_index"], name="patient_search_phone"),
        ]

    def __str__(self) -> str:
        return f"patient {self.pk}"  # never the name: str() ends up in logs

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.retention_key:
            # Registered before any test: kept as long as a negative test of today would be.
            days = settings.RELAIS_RETENTION["identities"]
            self.retention_key = crypto.retention_key_id(timezone.localdate() + timedelta(days=days))
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = [*kwargs["update_fields"], "retention_key"]
        super().save(*args, **kwargs)

    @property
    def display_name(self) -> str:
        return f"{self.last_name.upper()} {self.first_names}"

    def get_sex_display(self) -> str:
        """The sex's label in the reader's language ("Femme", "Female"), never the code (an encrypted field has no choices)."""
        return str(Sex(self.sex).label) if self.sex in Sex.values else str(self.sex)
