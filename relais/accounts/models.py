from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Pharmacy(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=200)
    finess = models.CharField(_("FINESS number"), max_length=9, unique=True)
    address_line = models.CharField(_("address"), max_length=200)
    postcode = models.CharField(_("postcode"), max_length=10)
    city = models.CharField(_("city"), max_length=100)
    # E.164 (relais.core.validators.phone_normalise); "" when not entered (pharmacies created before it existed).
    # Sent as the ordering facility's phone (HL7 ORC-23, FHIR Organization.telecom).
    phone = models.CharField(_("phone"), max_length=20, blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "pharmacies"

    def __str__(self) -> str:
        return f"{self.name} ({self.finess})"


class Role(models.TextChoices):
    PHARMACIST = "pharmacist", _("Pharmacist")
    PHARMACY_ADMIN = "pharmacy_admin", _("Pharmacy administrator")
    PLATFORM_OPERATOR = "platform_operator", _("Platform operator")
    AUDITOR = "auditor", _("Auditor")


# Roles whose work needs patient identity; operators and auditors never see it.
PATIENT_ROLES = {Role.PHARMACIST, Role.PHARMACY_ADMIN}
PHARMACY_ROLES = {Role.PHARMACIST, Role.PHARMACY_ADMIN}


class UserManager(BaseUserManager["User"]):
    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user


class User(AbstractBaseUser):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(_("email"), unique=True)
    full_name = models.CharField(_("full name"), max_length=200, blank=True)
    # RPPS (Répertoire partagé des professionnels de santé): 11 digits, the last a Luhn key; "" when not entered.
    # Sent as the ordering provider (HL7 ORC-12/OBR-16) and the FHIR performer; validated by accounts.validators.
    rpps = models.CharField(_("RPPS number"), max_length=11, blank=True, default="")
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    pharmacy = models.ForeignKey(Pharmacy, null=True, blank=True, on_delete=models.PROTECT, related_name="staff")
    is_active = models.BooleanField(default=True)  # type: ignore[assignment,misc]
    date_joined = models.DateTimeField(default=timezone.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []  # type: ignore[misc]
    objects = UserManager()  # type: ignore[misc]

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="pharmacy_roles_have_pharmacy",
                condition=~models.Q(role__in=["pharmacist", "pharmacy_admin"]) | models.Q(pharmacy__isnull=False),
            ),
            models.CheckConstraint(
                name="operators_have_no_pharmacy",
                condition=~models.Q(role="platform_operator") | models.Q(pharmacy__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def tenant_id(self) -> uuid.UUID:
        """The pharmacy every query of this user is scoped to; users of none get no pharmacy data."""
        if self.pharmacy_id is None:
            raise PermissionDenied
        return self.pharmacy_id

    @property
    def sees_patients(self) -> bool:
        return self.role in PATIENT_ROLES and self.pharmacy_id is not None

    @property
    def is_pharmacy_admin(self) -> bool:
        return self.role == Role.PHARMACY_ADMIN


class Invitation(models.Model):
    """A single-use, expiring invitation. Only the SHA-256 of its token is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token_hash = models.CharField(max_length=64, unique=True)
    email = models.EmailField()
    role = models.CharField(max_length=32, choices=Role.choices)
    pharmacy = models.ForeignKey(Pharmacy, null=True, blank=True, on_delete=models.PROTECT, related_name="invitations")
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The last email of the current token: when the mail server took it, or why it did not (a code, never the address).
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"invitation for {self.email}"

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and self.revoked_at is None and self.expires_at > timezone.now()

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def email_problem(self) -> str:
        """The last send's failure in a sentence for the administrator (email_error holds a code, not the server's words)."""
        kind, _sep, detail = self.email_error.partition(":")
        if kind == "refused":
            return str(_("The mail server refused this address (%(code)s): check it, or pass the link on yourself.") % {"code": detail})
        if kind == "answered":
            return str(
                _("The mail server did not take the email (%(code)s): try Resend later, or pass the link on yourself.") % {"code": detail}
            )
        if kind:
            return str(_("The mail server could not be reached: try Resend later, or pass the link on yourself."))
        return ""
