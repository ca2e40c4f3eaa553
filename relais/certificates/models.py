"""Issued EU Digital COVID Certificates and their revocation."""

from __future__ import annotations

import uuid

from django.db import models

from relais.accounts.models import Pharmacy
from relais.core.fields import EncryptedTextField
from relais.screenings.models import Screening


class Certificate(models.Model):
    """One signed test certificate for one screening version. The HC1 string holds the name and birth date: encrypted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    screening = models.OneToOneField(Screening, on_delete=models.PROTECT, related_name="certificate")
    series_id = models.UUIDField(db_index=True)
    pharmacy = models.ForeignKey(Pharmacy, on_delete=models.PROTECT, related_name="+")
    uvci = models.CharField(max_length=80, unique=True)
    uvci_hash = models.CharField(max_length=32, db_index=True)  # revocation-list form: base64 of SHA-256's first 16 bytes
    hc1 = EncryptedTextField()
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revocation_reason = models.CharField(max_length=32, blank=True)

    def __str__(self) -> str:
        return f"certificate {self.uvci}"

    @property
    def qr_svg(self) -> str:
        from relais.certificates.qr import qr_svg

        return qr_svg(self.hc1)
