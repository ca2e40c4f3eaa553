"""Pre-registrations: a patient types identity and contact on their phone before the visit; the counter confirms them.

Every identity field is encrypted (under a retention key shredded the day after expiry); rows expire after 24 hours
and are deleted by the ``prereg.purge`` job, and no read shows one after its expiry even before the purge."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models

from relais.accounts.models import Pharmacy
from relais.core.fields import EncryptedDateField, EncryptedTextField


class PreRegLink(models.Model):
    """A pharmacy's current pre-registration link. The token is not personal data: it only lets one fill in the form."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pharmacy = models.OneToOneField(Pharmacy, on_delete=models.CASCADE, related_name="prereg_link")
    token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"prereg link {self.pk}"  # never the token: str() ends up in logs


class PreRegistration(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=8)
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
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    # A day's retention key (relais.core.crypto): the retention purge destroys it the day after expiry at the latest.
    retention_key = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pharmacy", "code"], name="prereg_code_unique_per_pharmacy")]
        indexes = [models.Index(fields=["pharmacy", "expires_at"], name="prereg_pharmacy_expires")]

    def __str__(self) -> str:
        return f"pre-registration {self.pk}"  # never the name

    @property
    def display_name(self) -> str:
        return f"{self.last_name.upper()} {self.first_names}"

    def identity_values(self) -> dict[str, Any]:
        from relais.patients.identity import IDENTITY_FIELDS

        return {name: getattr(self, name) for name in IDENTITY_FIELDS}


class RateHit(models.Model):
    """One accepted pre-registration, counted against its client address and its link for an hour (in the database:
    several web processes share the count). ``key`` is a keyed hash, never the address itself."""

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=80)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["key", "at"], name="prereg_ratehit_key_at")]

    def __str__(self) -> str:
        return f"rate hit {self.pk}"
