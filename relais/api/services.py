"""API clients: registration with a public key, rotation, revocation, and the RFC 7523 token exchange."""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from relais.accounts.models import Pharmacy, Role, User
from relais.api.models import AccessToken, ApiClient, ApiClientKey, UsedAssertion
from relais.audit.services import audit_record

ASSERTION_MAX_LIFETIME = timedelta(minutes=5)
ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)
CLOCK_SKEW = timedelta(seconds=30)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenError(Exception):
    """RFC 6749 error: ``code`` is the error, the message says what to fix."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def public_key_info(pem: str) -> tuple[str, str, str]:
    """(normalised PEM, kid, algorithm) for an EC P-256 or RSA >= 2048 public key; ValidationError otherwise."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValidationError({"public_key": ["This is not a PEM public key (-----BEGIN PUBLIC KEY-----)."]}) from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValidationError({"public_key": [f"EC keys must be on P-256, not {key.curve.name}."]})
        algorithm = "ES256"
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValidationError({"public_key": [f"RSA keys need at least 2048 bits, this one has {key.key_size}."]})
        algorithm = "RS256"
    else:
        raise ValidationError({"public_key": ["Use an EC P-256 or an RSA (2048 bits or more) public key."]})
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    normalised = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return normalised, hashlib.sha256(der).hexdigest(), algorithm


def apiclient_create(*, actor: User | None, pharmacy: Pharmacy, name: str, public_key_pem: str) -> ApiClient:
    if actor is not None and not (actor.role == Role.PHARMACY_ADMIN and actor.pharmacy_id == pharmacy.pk):
        raise PermissionDenied
    normalised, kid, algorithm = public_key_info(public_key_pem)
    if not name.strip():
        raise ValidationError({"name": ["Name the software (e.g. its product name)."]})
    with transaction.atomic():
        client_id = uuid.uuid4()
        service_user = User.objects.create_user(
            f"api-{client_id}@clients.relais.invalid", None, full_name=f"API: {name.strip()}", role=Role.PHARMACIST, pharmacy=pharmacy
        )
        client = ApiClient.objects.create(id=client_id, pharmacy=pharmacy, name=name.strip(), service_user=service_user, created_by=actor)
        ApiClientKey.objects.create(client=client, kid=kid, public_key_pem=normalised, algorithm=algorithm)
        audit_record(actor=actor, action="apiclient.create", object_type="apiclient", object_ids=[client.pk], pharmacy_id=pharmacy.pk)
    return client


def apiclient_add_key(*, actor: User | None, client: ApiClient, public_key_pem: str) -> ApiClientKey:
    """Rotation: the new key works at once, the old one until revoked."""
    if actor is not None and not (actor.role == Role.PHARMACY_ADMIN and actor.pharmacy_id == client.pharmacy_id):
        raise PermissionDenied
    normalised, kid, algorithm = public_key_info(public_key_pem)
    with transaction.atomic():
        try:
            with transaction.atomic():
                key = ApiClientKey.objects.create(client=client, kid=kid, public_key_pem=normalised, algorithm=algorithm)
        except IntegrityError as exc:
            raise ValidationError({"public_key": ["This key is already registered for this client."]}) from exc
        audit_record(
            actor=actor, action="apiclient.key_add", object_type="apiclient", object_ids=[client.pk, key.pk], pharmacy_id=client.pharmacy_id
        )
    return key


def apiclient_revoke_key(*, actor: User | None, key: ApiClientKey) -> None:
    with transaction.atomic():
        ApiClientKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        audit_record(actor=actor, action="apiclient.key_revoke", object_type="apiclient", object_ids=[key.client_id, key.pk])


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


def _verify_assertion(assertion: str, *, client: ApiClient, audience: str, now: datetime) -> tuple[dict[str, Any], ApiClientKey]:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_client", f"client_assertion is not a JWT: {exc}") from exc
    keys = list(client.keys.filter(revoked_at__isnull=True))
    if header.get("kid"):
        keys = [k for k in keys if k.kid == header["kid"]]
    if not keys:
        raise TokenError("invalid_client", "no active key matches this assertion (revoked, or unknown kid)")
    algorithms = sorted({k.algorithm for k in keys})
    keys = [k for k in keys if k.algorithm == header.get("alg")]
    if not keys:
        raise TokenError("invalid_client", f"sign with {' or '.join(algorithms)}, the algorithm of your registered key")
    last_error: Exception | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                assertion,
                key.public_key_pem,
                algorithms=[key.algorithm],
                audience=audience,
                issuer=str(client.pk),
                leeway=CLOCK_SKEW,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
            )
            return claims, key
        except jwt.InvalidSignatureError as exc:
            last_error = exc
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("invalid_client", "the assertion has expired: sign a new one (exp at most 5 minutes ahead)") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError("invalid_client", f"wrong audience: aud must be {audience}") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError("invalid_client", f"the assertion lacks the {exc.claim} claim") from exc
        except jwt.PyJWTError as exc:
            last_error = exc
    raise TokenError("invalid_client", f"the assertion's signature does not verify with the registered key ({last_error})")


def token_issue(*, client_id: str, assertion: str, audience: str, now: datetime | None = None) -> IssuedToken:
    """RFC 7523 private_key_jwt: verify the signed assertion, refuse replays, return a short-lived bearer token."""
    now = now or timezone.now()
    try:
        client = ApiClient.objects.select_related("pharmacy").get(pk=uuid.UUID(client_id), revoked_at__isnull=True)
    except (ValueError, ApiClient.DoesNotExist) as exc:
        raise TokenError("invalid_client", "unknown or revoked client_id") from exc
    claims, key = _verify_assertion(assertion, client=client, audience=audience, now=now)
    if claims["sub"] != str(client.pk):
        raise TokenError("invalid_client", "sub must equal your client_id")
    expires = datetime.fromtimestamp(claims["exp"], tz=UTC)
    if expires - now > ASSERTION_MAX_LIFETIME + CLOCK_SKEW:
        raise TokenError("invalid_client", "the assertion lives too long: exp must be at most 5 minutes ahead")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        UsedAssertion.objects.filter(expires_at__lt=now - CLOCK_SKEW).delete()
        try:
            with transaction.atomic():
                UsedAssertion.objects.create(client=client, jti=_hash(str(claims["jti"])), expires_at=expires)
        except IntegrityError as exc:
            raise TokenError("invalid_client", "this assertion was already used (same jti): sign a new one per request") from exc
        AccessToken.objects.filter(expires_at__lt=now).delete()
        AccessToken.objects.create(token_hash=_hash(token), client=client, key=key, expires_at=now + ACCESS_TOKEN_LIFETIME)
        audit_record(actor=client.service_user, action="apiclient.token", object_type="apiclient", object_ids=[client.pk])
    return IssuedToken(token, int(ACCESS_TOKEN_LIFETIME.total_seconds()))


_TOKEN_MODELS = (ApiClient, User, Pharmacy)


@functools.cache
def _token_sql(vendor: str) -> str:
    """The bearer check as one hand-built statement: the ORM's compilation of the same join cost ~10x the query itself."""
    q = connection.ops.quote_name
    columns = ", ".join(f"{q(model._meta.db_table)}.{q(str(f.column))}" for model in _TOKEN_MODELS for f in model._meta.concrete_fields)
    token, client, key = (q(m._meta.db_table) for m in (AccessToken, ApiClient, ApiClientKey))
    user, pharmacy = q(User._meta.db_table), q(Pharmacy._meta.db_table)
    return (
        f"SELECT {columns} FROM {token}"  # noqa: S608 (names from the models' metadata; values are parameters)
        f" INNER JOIN {client} ON {client}.{q('id')} = {token}.{q('client_id')}"
        f" INNER JOIN {user} ON {user}.{q('id')} = {client}.{q('service_user_id')}"
        f" INNER JOIN {pharmacy} ON {pharmacy}.{q('id')} = {client}.{q('pharmacy_id')}"
        f" LEFT OUTER JOIN {key} ON {key}.{q('id')} = {token}.{q('key_id')}"
        f" WHERE {token}.{q('token_hash')} = %s AND {token}.{q('expires_at')} > %s AND {client}.{q('revoked_at')} IS NULL"
        f" AND ({token}.{q('key_id')} IS NULL OR {key}.{q('revoked_at')} IS NULL)"
    )


_CONVERTERS: dict[tuple[str, str], tuple[list[str], list[tuple[Any, list[Any]]]]] = {}


def _converters(model: type[Any], vendor: str) -> tuple[list[str], list[tuple[Any, list[Any]]]]:
    """Per column of ``model``: its expression and the converters the ORM applies to what the database returns."""
    key = (model._meta.label, vendor)
    if key not in _CONVERTERS:
        columns = []
        for f in model._meta.concrete_fields:
            col = f.get_col(model._meta.db_table)
            columns.append((col, connection.ops.get_db_converters(col) + f.get_db_converters(connection)))
        _CONVERTERS[key] = ([f.attname for f in model._meta.concrete_fields], columns)
    return _CONVERTERS[key]


def _from_row(model: type[Any], values: tuple[Any, ...]) -> Any:
    """A model instance from its columns as the database returned them, converted as the ORM would."""
    names, columns = _converters(model, connection.vendor)
    converted = []
    for (col, converters), value in zip(columns, values, strict=True):
        for converter in converters:
            value = converter(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, names, converted)


def client_for_token(token: str, *, now: datetime | None = None) -> ApiClient | None:
    """The client a bearer token acts for, or None when the token is unknown, expired, or its client or key is revoked.

    Checked against the database on every request, so a revocation takes effect at the next request."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_token_sql(connection.vendor), [_hash(token), connection.ops.adapt_datetimefield_value(now)])
        row = cursor.fetchone()
    if row is None:
        return None
    widths = [len(model._meta.concrete_fields) for model in _TOKEN_MODELS]
    client = _from_row(ApiClient, row[: widths[0]])
    client.service_user = _from_row(User, row[widths[0] : widths[0] + widths[1]])
    client.pharmacy = _from_row(Pharmacy, row[widths[0] + widths[1] :])
    if client.service_user.pharmacy_id == client.pharmacy.pk:
        client.service_user.pharmacy = client.pharmacy  # the same row: the service user's pharmacy needs no query of its own
    return client  # type: ignore[no-any-return]


# --- Web management by the pharmacy admin ("Connected software") ---------------------------------------------------

MAX_ACTIVE_KEYS = 2  # the current key and its successor during a rotation


def _require_admin_of(actor: User | None, client: ApiClient) -> None:
    if actor is not None and not (actor.role == Role.PHARMACY_ADMIN and actor.pharmacy_id == client.pharmacy_id):
        raise PermissionDenied


def apiclient_add_rotation_key(*, actor: User | None, client: ApiClient, public_key_pem: str) -> ApiClientKey:
    """Add a key for a rotation: refused on a revoked client and when two keys are already active."""
    _require_admin_of(actor, client)
    with transaction.atomic():
        # Lock the client row so two concurrent additions cannot both see one active key.
        locked = ApiClient.objects.select_for_update().get(pk=client.pk)
        if locked.revoked_at is not None:
            raise ValidationError({"public_key": ["This software is revoked: register it again instead."]})
        if ApiClientKey.objects.filter(client=locked, revoked_at__isnull=True).count() >= MAX_ACTIVE_KEYS:
            raise ValidationError(
                {"public_key": ["Two keys are already active: revoke the one your software no longer uses, then add the new one."]}
            )
        return apiclient_add_key(actor=actor, client=locked, public_key_pem=public_key_pem)


def apiclient_revoke_client_key(*, actor: User | None, client: ApiClient, key_id: uuid.UUID) -> ApiClientKey:
    """Revoke one key of ``client`` (ApiClientKey.DoesNotExist for a key of another client); its tokens stop working at once."""
    _require_admin_of(actor, client)
    with transaction.atomic():
        key = ApiClientKey.objects.select_for_update().get(pk=key_id, client_id=client.pk)
        apiclient_revoke_key(actor=actor, key=key)
        AccessToken.objects.filter(key=key).delete()
        key.refresh_from_db()
    return key


def apiclient_revoke(*, actor: User | None, client: ApiClient) -> None:
    """Revoke the client: no new token is issued, and tokens already issued stop working at once."""
    _require_admin_of(actor, client)
    with transaction.atomic():
        ApiClient.objects.filter(pk=client.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        # client_for_token already refuses a revoked client; deleting the tokens makes it hold without that check.
        AccessToken.objects.filter(client_id=client.pk).delete()
        audit_record(
            actor=actor, action="apiclient.revoke", object_type="apiclient", object_ids=[client.pk], pharmacy_id=client.pharmacy_id
        )
    client.refresh_from_db(fields=["revoked_at"])
