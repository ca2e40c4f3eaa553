"""Issued EU Digital COVID Certificates and their revocation."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

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


class RefusalReason(models.TextChoices):
    """Why a test that qualifies for a certificate got none; each label tells the pharmacist what happened."""

    BIRTH_DATE_RANGE = "birth_date_range", _("the date of birth is before 1900, and the EU certificate format only carries 1900 to 2099")
    FAMILY_NAME_SCRIPT = (
        "family_name_script",
        _(
            "the last name has letters with no standard transliteration into Latin letters, which the EU certificate requires: "
            "enter the Latin spelling from the passport's machine-readable zone in \u201cLast name in Latin letters\u201d "
            "(Correct the identity)"
        ),
    )
    GIVEN_NAME_SCRIPT = (
        "given_name_script",
        _(
            "the first names have letters with no standard transliteration into Latin letters, which the EU certificate "
            "requires: enter the Latin spelling from the passport's machine-readable zone in \u201cFirst names in Latin "
            "letters\u201d (Correct the identity)"
        ),
    )
    SIGNER = "signer", _("the certificate signing key is not available: tell the platform operator")
    SCHEMA = "schema", _("the certificate failed the EU format check: tell the platform operator")


class CertificateRefusal(models.Model):
    """A screening version that qualified for a certificate but could not get one, and why: never a silent skip."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    screening = models.OneToOneField(Screening, on_delete=models.CASCADE, related_name="certificate_refusal")
    reason = models.CharField(max_length=32, choices=RefusalReason.choices)
    detail = models.CharField(max_length=200, blank=True)  # the failing schema location and rule, never a value
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"no certificate for screening {self.screening_id}: {self.reason}"
