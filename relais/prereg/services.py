"""Pre-registration: the public link, the patient's submission, and the counter's list, lookup, confirm and discard.

Every read of a pre-registration's identity and every write is audited in the same transaction. Nothing is read after
its expiry: every query filters on ``expires_at``, and the hourly ``prereg.purge`` job deletes what has expired."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from relais.accounts.models import Pharmacy, Role, User
from relais.audit.services import audit_record
from relais.core import crypto
from relais.core.tenancy import for_actor
from relais.patients.services import PatientIdentity, Resolution, patient_resolve
from relais.prereg import config
from relais.prereg.models import PreRegistration, PreRegLink, RateHit

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: read aloud or typed from a phone screen without mistakes.
CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 6


class RateLimited(Exception):
    def __init__(self, scope: str) -> None:
        super().__init__(f"too many pre-registrations ({scope})")
        self.scope = scope  # "address" or "link"


# --- the pharmacy's link -----------------------------------------------------------------------------------------


def _new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


def link_for(*, pharmacy: Pharmacy) -> PreRegLink:
    """The pharmacy's current link, created at first use."""
    link = PreRegLink.objects.filter(pharmacy=pharmacy).first()
    if link is not None:
        return link
    try:
        with transaction.atomic():
            return PreRegLink.objects.create(pharmacy=pharmacy, token=_new_token())
    except IntegrityError:  # created meanwhile by another request
        return PreRegLink.objects.get(pharmacy=pharmacy)


def link_by_token(*, token: str) -> PreRegLink | None:
    """The link this token names, if it is current and its pharmacy active; an old (rotated) token names nothing."""
    if not token or len(token) > 64:
        return None
    return PreRegLink.objects.select_related("pharmacy").filter(token=token, pharmacy__is_active=True).first()


def link_rotate(*, actor: User, now: datetime | None = None) -> PreRegLink:
    """A new token for the pharmacy's link (the old poster stops working); pharmacy administrators only."""
    if actor.role != Role.PHARMACY_ADMIN or actor.pharmacy_id is None:
        raise PermissionDenied
    with transaction.atomic():
        link = link_for(pharmacy=actor.pharmacy)  # type: ignore[arg-type]  # pharmacy_id checked above
        link = PreRegLink.objects.select_for_update().get(pk=link.pk)
        link.token = _new_token()
        link.rotated_at = now or timezone.now()
        link.save(update_fields=["token", "rotated_at"])
        audit_record(actor=actor, action="prereg.link_rotate", object_type="prereg_link", object_ids=[link.pk])
    return link


# --- the patient's submission ------------------------------------------------------------------------------------


def _address_key(client_address: str) -> str:
    return "addr:" + salted_hmac("relais.prereg.rate", client_address or "unknown").hexdigest()[:64]


def _link_key(link: PreRegLink) -> str:
    return f"link:{link.pharmacy_id}"


def normalise_code(value: str) -> str:
    return "".join(ch for ch in value.upper() if ch.isalnum())


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def prereg_submit(*, link: PreRegLink, identity: PatientIdentity, client_address: str, now: datetime | None = None) -> PreRegistration:
    """Store the identity, encrypted, for 24 hours under a short code unique in the pharmacy; RateLimited past the
    limits (per client address, per link) counted over the last hour."""
    now = now or timezone.now()
    expires_at = now + config.lifetime()
    address_key, link_key = _address_key(client_address), _link_key(link)
    with transaction.atomic():
        # One submission of a link at a time: the counts below cannot be raced past by another web process.
        PreRegLink.objects.select_for_update().filter(pk=link.pk).first()
        since = now - config.RATE_WINDOW
        if RateHit.objects.filter(key=address_key, at__gt=since).count() >= config.limit("per_address_per_hour"):
            raise RateLimited("address")
        if RateHit.objects.filter(key=link_key, at__gt=since).count() >= config.limit("per_link_per_hour"):
            raise RateLimited("link")
        retention_key = crypto.retention_key_id(timezone.localdate(expires_at) + timedelta(days=1))
        for _attempt in range(20):
            row = PreRegistration(
                pharmacy_id=link.pharmacy_id, code=_new_code(), created_at=now, expires_at=expires_at, retention_key=retention_key
            )
            for field in fields(PatientIdentity):
                setattr(row, field.name, getattr(identity, field.name))
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                continue  # that code is taken in this pharmacy: draw another
            break
        else:
            raise RuntimeError("no free pre-registration code")  # 25**6 codes: practically unreachable
        RateHit.objects.bulk_create([RateHit(key=address_key, at=now), RateHit(key=link_key, at=now)])
        audit_record(actor=None, action="prereg.submit", object_type="prereg", object_ids=[row.pk], pharmacy_id=link.pharmacy_id)
    return row


def public_status(*, prereg_id: str, now: datetime | None = None) -> PreRegistration | None:
    """For the patient's confirmation page: the live pre-registration (its code and expiry are shown, no identity)."""
    try:
        key = uuid.UUID(str(prereg_id))
    except ValueError:
        return None
    return PreRegistration.objects.filter(pk=key, expires_at__gt=now or timezone.now()).only("id", "code", "expires_at", "pharmacy").first()


def public_withdraw(*, prereg_id: str, now: datetime | None = None) -> bool:
    """The patient changed their mind: the pre-registration is deleted at once."""
    with transaction.atomic():
        row = public_status(prereg_id=prereg_id, now=now)
        if row is None:
            return False
        audit_record(actor=None, action="prereg.withdraw", object_type="prereg", object_ids=[row.pk], pharmacy_id=row.pharmacy_id)
        row.delete()
    return True


# --- the counter -------------------------------------------------------------------------------------------------


def _live(actor: User, now: datetime | None = None) -> QuerySet[PreRegistration]:
    return for_actor(PreRegistration, actor).filter(expires_at__gt=now or timezone.now())


def prereg_list(*, actor: User, now: datetime | None = None) -> list[PreRegistration]:
    """The pharmacy's live pre-registrations, oldest first; the read is audited."""
    with transaction.atomic():
        rows = list(_live(actor, now).order_by("created_at", "id"))
        audit_record(actor=actor, action="prereg.list", object_type="prereg", object_ids=[r.pk for r in rows], detail={"count": len(rows)})
    return rows


def prereg_find(*, actor: User, code: str, now: datetime | None = None) -> PreRegistration | None:
    """The live pre-registration with this code in the actor's pharmacy; the lookup is audited, found or not."""
    code = normalise_code(code)
    with transaction.atomic():
        row = _live(actor, now).filter(code=code).first() if len(code) == CODE_LENGTH else None
        audit_record(
            actor=actor, action="prereg.lookup", object_type="prereg", object_ids=[row.pk] if row else [], detail={"found": row is not None}
        )
    return row


def prereg_get(*, actor: User, prereg_id: uuid.UUID | str, now: datetime | None = None) -> PreRegistration:
    """One live pre-registration of the actor's pharmacy (DoesNotExist otherwise); the read is audited."""
    with transaction.atomic():
        row = _live(actor, now).get(pk=prereg_id)
        audit_record(actor=actor, action="prereg.view", object_type="prereg", object_ids=[row.pk])
    return row


def identity_of(row: PreRegistration) -> PatientIdentity:
    return PatientIdentity(**row.identity_values())


def prereg_confirm(
    *,
    actor: User,
    prereg_id: uuid.UUID | str,
    identity: PatientIdentity | None = None,
    identity_verified: bool | None = None,
    now: datetime | None = None,
) -> Resolution:
    """The pharmacist checked the identity document: the patient is matched or registered (patients.services'
    patient_resolve, with its duplicate detection), the pre-registration deleted, all in one audited transaction.
    ``identity``: the identity as corrected at the counter, when it differed from what the patient typed."""
    with transaction.atomic():
        row = _live(actor, now).select_for_update().get(pk=prereg_id)
        submitted = identity_of(row)
        chosen = identity or submitted
        if identity_verified is not None:  # the counter's answer to "I checked the identity on an identity document"
            chosen = replace(chosen, identity_verified=identity_verified)
        resolution = patient_resolve(actor=actor, identity=chosen)
        corrected = sorted(
            f.name for f in fields(PatientIdentity) if identity is not None and getattr(identity, f.name) != getattr(submitted, f.name)
        )
        detail: dict[str, Any] = {"created": resolution.created, "needs_review": resolution.needs_review, "corrected_fields": corrected}
        audit_record(actor=actor, action="prereg.confirm", object_type="prereg", object_ids=[row.pk, resolution.patient.pk], detail=detail)
        row.delete()
    return resolution


def prereg_discard(*, actor: User, prereg_id: uuid.UUID | str, now: datetime | None = None) -> None:
    with transaction.atomic():
        row = _live(actor, now).select_for_update().get(pk=prereg_id)
        audit_record(actor=actor, action="prereg.discard", object_type="prereg", object_ids=[row.pk])
        row.delete()


# --- the scheduled purge -----------------------------------------------------------------------------------------


def purge(*, now: datetime | None = None) -> dict[str, Any]:
    """Delete expired pre-registrations (never decrypted on the way) and rate counts older than their window."""
    now = now or timezone.now()
    with transaction.atomic():
        expired = list(PreRegistration.objects.filter(expires_at__lte=now).values_list("id", flat=True)[:10_000])
        deleted = PreRegistration.objects.filter(pk__in=expired).delete()[0] if expired else 0
        hits = RateHit.objects.filter(at__lte=now - config.RATE_WINDOW).delete()[0]
        if deleted:
            audit_record(actor=None, action="prereg.purge", object_type="prereg", object_ids=expired, detail={"deleted": deleted})
    return {"expired_deleted": deleted, "rate_hits_deleted": hits}


def purge_job(now: datetime) -> dict[str, Any]:
    report = purge(now=now)
    while report["expired_deleted"] >= 10_000:  # a backlog (the job was stopped for days): keep going
        more = purge(now=now)
        report = {k: report[k] + more[k] for k in report}
        if more["expired_deleted"] < 10_000:
            break
    return report
