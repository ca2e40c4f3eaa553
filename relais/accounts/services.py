"""Pharmacy onboarding, invitations and staff lifecycle."""

from __future__ import annotations

import hashlib
import secrets
import smtplib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts import mail
from relais.accounts.models import PHARMACY_ROLES, Invitation, Pharmacy, Role, User
from relais.accounts.validators import rpps_normalise
from relais.audit.services import audit_record
from relais.core.tenancy import get_for_actor
from relais.core.validators import finess_normalise, phone_normalise, postcode_normalise

INVITATION_LIFETIME = timedelta(hours=72)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _pharmacy_phone(phone: str) -> str:
    """The pharmacy's phone in E.164 (French numbers may be written nationally), "" when empty; ValidationError on
    the ``phone`` field otherwise."""
    phone = (phone or "").strip()
    if not phone:
        return ""
    try:
        return phone_normalise(phone, region="FR")
    except ValidationError as exc:
        raise ValidationError({"phone": exc.messages}) from exc


def pharmacy_create(
    *, actor: User | None, name: str, finess: str, address_line: str, postcode: str, city: str, phone: str = ""
) -> Pharmacy:
    if actor is not None and actor.role != Role.PLATFORM_OPERATOR:
        raise PermissionDenied
    errors: dict[str, list[str]] = {}
    try:
        phone = _pharmacy_phone(phone)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        finess = finess_normalise(finess)
    except ValidationError as exc:
        errors["finess"] = exc.messages
    try:
        postcode = postcode_normalise(postcode, country="FR")
    except ValidationError as exc:
        errors["postcode"] = exc.messages
    for field, value in (("name", name), ("address_line", address_line), ("city", city)):
        if not value.strip():
            errors[field] = [_("This field is required.")]
    if "finess" not in errors and Pharmacy.objects.filter(finess=finess).exists():
        errors["finess"] = [_("A pharmacy with this FINESS number is already registered.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        pharmacy = Pharmacy.objects.create(
            name=name.strip(), finess=finess, address_line=address_line.strip(), postcode=postcode, city=city.strip(), phone=phone
        )
        audit_record(actor=actor, action="pharmacy.create", object_type="pharmacy", object_ids=[pharmacy.pk], pharmacy_id=pharmacy.pk)
    return pharmacy


def pharmacy_phone_set(*, actor: User, pharmacy_id: uuid.UUID | str, phone: str) -> Pharmacy:
    """A pharmacy's phone (sent as the ordering facility's, HL7 ORC-23 and FHIR Organization.telecom), set by a
    platform operator; "" removes it. Pharmacy.DoesNotExist for an unknown id (the view answers 404). Audited
    pharmacy.phone_change when it changes (the event names the pharmacy, not the number)."""
    if actor.role != Role.PLATFORM_OPERATOR:
        raise PermissionDenied
    phone = _pharmacy_phone(phone)
    with transaction.atomic():
        pharmacy = Pharmacy.objects.select_for_update().get(pk=pharmacy_id)
        if pharmacy.phone != phone:
            pharmacy.phone = phone
            pharmacy.save(update_fields=["phone"])
            audit_record(
                actor=actor, action="pharmacy.phone_change", object_type="pharmacy", object_ids=[pharmacy.pk], pharmacy_id=pharmacy.pk
            )
    return pharmacy


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str


def _may_invite(actor: User | None, role: str, pharmacy: Pharmacy | None) -> bool:
    if actor is None:  # command line, run by whoever holds the server
        return True
    if actor.role == Role.PLATFORM_OPERATOR:
        return role in {Role.PHARMACY_ADMIN, Role.PLATFORM_OPERATOR, Role.AUDITOR}
    if actor.role == Role.PHARMACY_ADMIN:
        return pharmacy is not None and pharmacy.pk == actor.pharmacy_id and role in {Role.PHARMACIST, Role.PHARMACY_ADMIN}
    return False


def invitation_create(*, actor: User | None, email: str, role: str, pharmacy: Pharmacy | None) -> IssuedInvitation:
    email = email.strip().lower()
    if role not in Role.values:
        raise ValidationError({"role": [_("Choose a role from the list.")]})
    if not _may_invite(actor, role, pharmacy):
        raise PermissionDenied
    if role in {Role.PHARMACIST, Role.PHARMACY_ADMIN} and pharmacy is None:
        raise ValidationError({"pharmacy": [_("Pharmacy staff must belong to a pharmacy.")]})
    if role == Role.PLATFORM_OPERATOR:
        pharmacy = None
    if User.objects.filter(email=email).exists():
        raise ValidationError({"email": [_("An account with this email already exists.")]})
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        Invitation.objects.filter(email=email, used_at__isnull=True, revoked_at__isnull=True).update(revoked_at=timezone.now())
        invitation = Invitation.objects.create(
            token_hash=_token_hash(token),
            email=email,
            role=role,
            pharmacy=pharmacy,
            invited_by=actor,
            expires_at=timezone.now() + INVITATION_LIFETIME,
        )
        audit_record(
            actor=actor,
            action="staff.invite",
            object_type="invitation",
            object_ids=[invitation.pk],
            pharmacy_id=pharmacy.pk if pharmacy else None,
            detail={"role": role},
        )
    return IssuedInvitation(invitation=invitation, token=token)


def invitation_email_send(*, invitation: Invitation, token: str) -> bool:
    """Email the link, after the invitation is committed. True when the mail server took it; otherwise the reason is
    kept on the invitation (the team page shows it, with the link and Resend), so a failed send loses nothing."""
    try:
        mail.send_invitation(invitation, token)
    except (OSError, smtplib.SMTPException) as exc:
        error = mail.error_code(exc)
        Invitation.objects.filter(pk=invitation.pk, token_hash=_token_hash(token)).update(emailed_at=None, email_error=error)
        invitation.emailed_at, invitation.email_error = None, error
        return False
    now = timezone.now()
    # Only for the token it carried: a resend in the meantime gave the invitation a new one.
    Invitation.objects.filter(pk=invitation.pk, token_hash=_token_hash(token)).update(emailed_at=now, email_error="")
    invitation.emailed_at, invitation.email_error = now, ""
    return True


def invitations_open(*, actor: User) -> list[Invitation]:
    """The pharmacy's invitations not accepted and not revoked, expired ones included (they can be resent), newest first."""
    if actor.role != Role.PHARMACY_ADMIN:
        raise PermissionDenied
    rows = Invitation.objects.filter(pharmacy_id=actor.tenant_id, used_at__isnull=True, revoked_at__isnull=True)
    return list(rows.order_by("-created_at")[:200])


def _open_invitation_for_update(actor: User, invitation_id: uuid.UUID | str) -> Invitation:
    """Another pharmacy's invitation is Invitation.DoesNotExist, as one that never existed (the view answers 404)."""
    if actor.role != Role.PHARMACY_ADMIN:
        raise PermissionDenied
    invitation = Invitation.objects.select_for_update().get(pk=invitation_id, pharmacy_id=actor.tenant_id)
    if invitation.used_at is not None:
        raise ValidationError({"__all__": [_("This invitation was already accepted.")]})
    if invitation.revoked_at is not None:
        raise ValidationError({"__all__": [_("This invitation was already revoked.")]})
    return invitation


def invitation_revoke(*, actor: User, invitation_id: uuid.UUID | str) -> Invitation:
    """The link stops working at once; the accept page says the invitation was withdrawn."""
    with transaction.atomic():
        invitation = _open_invitation_for_update(actor, invitation_id)
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="staff.invite_revoke",
            object_type="invitation",
            object_ids=[invitation.pk],
            pharmacy_id=invitation.pharmacy_id,
        )
    return invitation


def invitation_resend(*, actor: User, invitation_id: uuid.UUID | str) -> IssuedInvitation:
    """A new token (the old link stops working) and a new expiry; the caller emails it after the commit."""
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = _open_invitation_for_update(actor, invitation_id)
        if User.objects.filter(email=invitation.email).exists():
            raise ValidationError({"__all__": [_("An account with this email already exists.")]})
        invitation.token_hash = _token_hash(token)
        invitation.expires_at = timezone.now() + INVITATION_LIFETIME
        invitation.emailed_at, invitation.email_error = None, ""
        invitation.save(update_fields=["token_hash", "expires_at", "emailed_at", "email_error"])
        audit_record(
            actor=actor,
            action="staff.invite_resend",
            object_type="invitation",
            object_ids=[invitation.pk],
            pharmacy_id=invitation.pharmacy_id,
        )
    return IssuedInvitation(invitation=invitation, token=token)


def invitation_state(*, token: str) -> str:
    """Why a link does not open the form: "revoked", "used", "expired", or "unknown" (never issued, or replaced by a resend)."""
    invitation = Invitation.objects.filter(token_hash=_token_hash(token)).only("used_at", "revoked_at", "expires_at").first()
    if invitation is None:
        return "unknown"
    if invitation.used_at is not None:
        return "used"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if invitation.is_expired else "usable"


def invitation_from_token(*, token: str) -> Invitation | None:
    invitation = Invitation.objects.select_related("pharmacy").filter(token_hash=_token_hash(token)).first()
    return invitation if invitation is not None and invitation.is_usable else None


def invitation_accept(*, token: str, full_name: str, password: str, rpps: str = "") -> User:
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().filter(token_hash=_token_hash(token)).first()
        if invitation is None or not invitation.is_usable:
            raise ValidationError({"__all__": [_("This invitation link is invalid, expired or already used. Ask for a new one.")]})
        if not full_name.strip():
            raise ValidationError({"full_name": [_("Enter your full name.")]})
        try:
            rpps = rpps_normalise(rpps)
        except ValidationError as exc:
            raise ValidationError({"rpps": exc.messages}) from exc
        user = User(email=invitation.email, full_name=full_name.strip(), role=invitation.role, pharmacy=invitation.pharmacy, rpps=rpps)
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise ValidationError({"password1": exc.messages}) from exc
        user.set_password(password)
        user.save()
        invitation.used_at = timezone.now()
        invitation.save(update_fields=["used_at"])
        audit_record(actor=user, action="staff.join", object_type="user", object_ids=[user.pk, invitation.pk])
    return user


def staff_rpps_set(*, actor: User, user_id: uuid.UUID | str, rpps: str) -> User:
    """A staff member's RPPS number, set by themselves or by their pharmacy's administrator (validated: 11 digits and a
    Luhn key; "" removes it). Audited without the number (the event names the account)."""
    if actor.role not in PHARMACY_ROLES:
        raise PermissionDenied
    try:
        rpps = rpps_normalise(rpps)
    except ValidationError as exc:
        raise ValidationError({"rpps": exc.messages}) from exc
    with transaction.atomic():
        user = get_for_actor(User.objects.select_for_update(), actor, user_id, patient_data=False)
        if user.pk != actor.pk and actor.role != Role.PHARMACY_ADMIN:
            raise PermissionDenied
        if user.rpps != rpps:
            user.rpps = rpps
            user.save(update_fields=["rpps"])
            audit_record(actor=actor, action="staff.rpps_change", object_type="user", object_ids=[user.pk])
    return user


def staff_deactivate(*, actor: User, user_id: uuid.UUID | str) -> User:
    if actor.role != Role.PHARMACY_ADMIN:
        raise PermissionDenied
    with transaction.atomic():
        user = get_for_actor(User.objects.select_for_update(), actor, user_id, patient_data=False)
        if user.pk == actor.pk:
            raise ValidationError({"__all__": [_("You cannot deactivate your own account.")]})
        user.is_active = False
        user.deactivated_at = timezone.now()
        user.save(update_fields=["is_active", "deactivated_at"])
        audit_record(actor=actor, action="staff.deactivate", object_type="user", object_ids=[user.pk])
    # Open sessions of the deactivated user end at their next request (is_active is checked by auth).
    return user
