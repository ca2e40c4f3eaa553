"""Webhooks: where a client is told that its screenings were acknowledged or rejected downstream."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import ipaddress
import json
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from relais.accounts.models import Role, User
from relais.api.models import ApiClient, DeliveryStatus, Webhook, WebhookDelivery
from relais.audit.services import audit_record
from relais.core import queue
from relais.core.secrets import decode_key
from relais.transfer.models import OutboxMessage, TransferStatus

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationError({"url": [f"The host {host} cannot be resolved: check the address."]}) from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def webhook_url_check(url: str, *, production: bool | None = None, resolve: bool = True) -> str:
    """Refuse anything but https (http only to loopback outside production) and, in production, private networks.

    Delivery checks the resolved addresses again, so a name that later points inside is refused then too."""
    production = settings.PRODUCTION if production is None else production
    url = url.strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"https", "http"} or not host:
        raise ValidationError({"url": ["Give a full https:// address, e.g. https://example.org/relais/webhook."]})
    if parts.username or parts.password:
        raise ValidationError({"url": ["Do not put a user name or password in the address; notifications are signed instead."]})
    if len(url) > 500:
        raise ValidationError({"url": ["The address is longer than 500 characters."]})
    if parts.scheme == "http" and (production or host not in LOOPBACK_HOSTS):
        raise ValidationError({"url": ["Use https: plain http is only accepted for a loopback address during development."]})
    if production:
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        addresses = [literal] if literal is not None else (_resolve(host, parts.port or 443) if resolve else [])
        if host in LOOPBACK_HOSTS or any(not is_public_address(a) for a in addresses):
            raise ValidationError({"url": ["This address is on a private or local network; give a public https address."]})
    return url


def _may_manage(actor: User, client: ApiClient) -> bool:
    """The pharmacy's admin, or the client itself through the API."""
    return (actor.role == Role.PHARMACY_ADMIN and actor.pharmacy_id == client.pharmacy_id) or actor.pk == client.service_user_id


def webhook_register(*, actor: User, client: ApiClient, url: str) -> Webhook:
    """One active webhook per client: registering a new address replaces the previous one."""
    if not _may_manage(actor, client):
        raise PermissionDenied
    url = webhook_url_check(url)
    with transaction.atomic():
        Webhook.objects.filter(client=client, disabled_at__isnull=True).update(disabled_at=timezone.now())
        webhook = Webhook.objects.create(client=client, url=url, created_by=actor)
        audit_record(actor=actor, action="webhook.register", object_type="apiclient", object_ids=[client.pk, webhook.pk])
    return webhook


def webhook_disable(*, actor: User, webhook: Webhook) -> None:
    if not _may_manage(actor, webhook.client):
        raise PermissionDenied
    with transaction.atomic():
        Webhook.objects.filter(pk=webhook.pk, disabled_at__isnull=True).update(disabled_at=timezone.now())
        audit_record(actor=actor, action="webhook.disable", object_type="apiclient", object_ids=[webhook.client_id, webhook.pk])


# --- Enqueue: one notification per outcome, written in the transaction that records it -----------------------------

EVENTS = {TransferStatus.ACKNOWLEDGED: "screening.acknowledged", TransferStatus.REJECTED: "screening.rejected"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def webhook_enqueue_for_outcomes(*, messages: list[OutboxMessage], now: datetime) -> list[WebhookDelivery]:
    """Queue notifications for messages that outbox_record has just settled at ``now``. Three queries whatever the batch size."""
    if not connection.in_atomic_block:
        raise RuntimeError("webhook_enqueue_for_outcomes must run in the outcome's transaction")
    # A settled timestamp equal to this call's ``now`` proves this worker's write won (a late lease holder's write is ignored).
    settled = list(
        OutboxMessage.objects.filter(pk__in=[m.pk for m in messages])
        .filter(Q(status=TransferStatus.ACKNOWLEDGED, acknowledged_at=now) | Q(status=TransferStatus.REJECTED, rejected_at=now))
        .select_related("screening")
    )
    recorders = {m.screening.recorded_by_id for m in settled if m.screening.recorded_by_id is not None}
    if not recorders:
        return []
    hooks: dict[Any, Webhook] = {
        w.client.service_user_id: w
        for w in Webhook.objects.filter(client__service_user_id__in=recorders, client__revoked_at__isnull=True, disabled_at__isnull=True)
        .select_related("client")
        .order_by("created_at")  # should two be active, the newest wins
    }
    deliveries = []
    for message in settled:
        webhook = hooks.get(message.screening.recorded_by_id)
        if webhook is None:
            continue
        delivery = WebhookDelivery(
            webhook=webhook, event=EVENTS[TransferStatus(message.status)], screening=message.screening, next_attempt_at=now
        )
        delivery.payload = {
            "event_id": str(delivery.pk),
            "event": delivery.event,
            "occurred_at": now.isoformat(),
            "screening_id": str(message.screening_id),
            "series_id": str(message.series_id),
            "version": message.version,
            "screening_status": message.screening.status,
            "transfer": {
                "status": message.status,
                "message_id": message.message_id,
                "acknowledged_at": _iso(message.acknowledged_at),
                "rejection_reason": message.rejection_reason or None,
            },
        }
        deliveries.append(delivery)
    return WebhookDelivery.objects.bulk_create(deliveries)


# --- Signing: an EC key derived from one secret, published as a JWK set; nothing shared with receivers --------------

SIGNATURE_HEADER = "Relais-Signature"
KEY_INFO = b"relais webhook signing key v1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@functools.lru_cache(maxsize=4)
def _signing_key(seed: str) -> ec.EllipticCurvePrivateKey:
    raw = decode_key("RELAIS_WEBHOOK_SIGNING_KEY", seed)
    # 48 bytes (64 more bits than the order) make the reduction's bias negligible; +1 keeps the scalar non-zero.
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=KEY_INFO).derive(raw)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return ec.derive_private_key(int.from_bytes(okm, "big") % (order - 1) + 1, ec.SECP256R1())


def _public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = key.public_numbers()
    coords = {"crv": "P-256", "kty": "EC", "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big"))}
    # RFC 7638 thumbprint: required members only, sorted, no whitespace.
    kid = _b64url(hashlib.sha256(json.dumps(coords, sort_keys=True, separators=(",", ":")).encode()).digest())
    return {**coords, "kid": kid, "alg": "ES256", "use": "sig"}


def webhook_jwks() -> dict[str, Any]:
    """The public key set receivers verify with (served at /api/v1/webhook-keys).

    After a rotation the previous keys stay published (RELAIS_WEBHOOK_PREVIOUS_SIGNING_KEYS) so notifications signed just
    before the change still verify; only the current key signs."""
    seeds = [settings.RELAIS_WEBHOOK_SIGNING_KEY, *getattr(settings, "RELAIS_WEBHOOK_PREVIOUS_SIGNING_KEYS", [])]
    return {"keys": [_public_jwk(_signing_key(seed).public_key()) for seed in seeds]}


def webhook_sign(body: bytes, *, at: float | None = None) -> str:
    """A compact JWS over the body with the payload left out (b64=false): header..signature."""
    key = _signing_key(settings.RELAIS_WEBHOOK_SIGNING_KEY)
    headers = {"kid": _public_jwk(key.public_key())["kid"], "iat": int(time.time() if at is None else at)}
    return jwt.api_jws.encode(body, key, algorithm="ES256", headers=headers, is_payload_detached=True)


class WebhookSignatureError(ValueError):
    """The body does not match the signature, the key is unknown, or the signature is stale."""


def verify_webhook_signature(body: bytes, signature: str, jwks: dict[str, Any], *, max_age_seconds: int = 300) -> dict[str, Any]:
    """Reference receiver check: returns the verified event. Receivers should also drop event ids they have seen."""
    try:
        header = jwt.get_unverified_header(signature)
        jwk = next((k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")), None)
        if jwk is None:
            raise WebhookSignatureError("unknown key id: fetch the key set again")
        decoded = jwt.api_jws.decode_complete(signature, key=jwt.PyJWK(jwk).key, algorithms=["ES256"], detached_payload=body)
    except jwt.InvalidTokenError as exc:
        raise WebhookSignatureError(f"invalid signature: {exc}") from exc
    iat = decoded["header"].get("iat")
    if not isinstance(iat, int) or abs(time.time() - iat) > max_age_seconds:
        raise WebhookSignatureError("signature too old (or from the future): possible replay")
    event: dict[str, Any] = json.loads(body)
    return event


# --- Delivery: lease, POST to the checked address only, record with backoff -----------------------------------------

RETRY_WINDOW = timedelta(hours=72)
BACKOFF_BASE, BACKOFF_CAP = 2.0, 600.0  # seconds; as the transfer queue's defaults
CLAIM_BATCH = 20


def _timeout() -> float:
    return float(getattr(settings, "RELAIS_WEBHOOK_TIMEOUT", 10))


def _lease_seconds() -> float:
    # Deliveries in a batch run one after another; the lease outlasts a batch of timeouts.
    return CLAIM_BATCH * (_timeout() + 2) + 30


QUEUE = queue.LeasedQueue(
    WebhookDelivery, open=Q(status=DeliveryStatus.PENDING), lease_seconds=_lease_seconds, related=("webhook__client",)
)


def webhook_claim(*, owner: str, limit: int = CLAIM_BATCH, now: datetime | None = None) -> list[WebhookDelivery]:
    """Lease up to ``limit`` due deliveries."""
    return QUEUE.claim(owner=owner, limit=limit, now=now)


def webhook_release(*, owner: str, ids: list[Any]) -> int:
    return QUEUE.release(owner=owner, ids=ids)


def webhook_backoff_seconds(attempts: int, *, retry_after: float | None = None) -> float:
    return queue.backoff_seconds(attempts, base=BACKOFF_BASE, cap=BACKOFF_CAP, retry_after=retry_after)


def webhook_record_error(*, owner: str, delivery: WebhookDelivery, error: str, now: datetime | None = None) -> bool:
    """An unexpected error while delivering: retried with backoff, failed at the fifth (shown in the delivery log)."""
    now = now or timezone.now()
    return QUEUE.record_error(
        owner=owner,
        row=delivery,
        error=error,
        backoff=webhook_backoff_seconds,
        also={"last_attempt_at": now, "last_status_code": None},
        parked={"status": DeliveryStatus.FAILED},
        now=now,
    )


@dataclass(frozen=True)
class WebhookOutcome:
    kind: str  # delivered | retry | failed
    status_code: int | None = None
    detail: str = ""
    retry_after: float | None = None


def _connect(addresses: list[str], port: int, timeout: float | None) -> socket.socket:
    """The first checked address that answers (localhost may be ::1 then 127.0.0.1)."""
    error: OSError = OSError("no address")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            error = exc
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the addresses that were checked, whatever the name resolves to by now (no DNS rebinding)."""

    def __init__(self, host: str, port: int, *, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, addresses: list[str], timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._addresses = addresses

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _short(text: str, limit: int = 200) -> str:
    return re.sub(r"\s+", " ", text).strip()[:limit]


def _target(url: str) -> tuple[str, int, list[str], str]:
    """Check the URL again and pick the addresses to connect to: (host, port, addresses, path). Raises ValidationError."""
    webhook_url_check(url, resolve=False)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if settings.PRODUCTION and (not addresses or any(not is_public_address(a) for a in addresses)):
        raise ValidationError("the address resolves to a private or local network; not sent")
    return host, port, [str(a) for a in addresses], (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def webhook_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()


def webhook_deliver_one(delivery: WebhookDelivery) -> WebhookOutcome:
    """One POST attempt. Touches no database (runs with the delivery and its webhook already loaded)."""
    webhook = delivery.webhook
    if webhook.disabled_at is not None or webhook.client.revoked_at is not None:
        return WebhookOutcome("failed", detail="the webhook was disabled (or its client revoked) before delivery")
    try:
        host, port, addresses, path = _target(webhook.url)
    except ValidationError as exc:
        return WebhookOutcome("retry", detail=_short(" ".join(exc.messages)))
    body = webhook_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Relais-Webhooks/1",
        "Relais-Event-Id": str(delivery.pk),
        SIGNATURE_HEADER: webhook_sign(body),
    }
    conn: http.client.HTTPConnection
    if urlsplit(webhook.url).scheme == "https":
        conn = _PinnedHTTPSConnection(host, port, addresses=addresses, timeout=_timeout(), context=_tls_context())
    else:
        conn = _PinnedHTTPConnection(host, port, addresses=addresses, timeout=_timeout())
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        snippet = response.read(200).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return WebhookOutcome("retry", detail=_short(f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
    if 200 <= response.status < 300:
        return WebhookOutcome("delivered", status_code=response.status)
    retry_after = queue.parse_retry_after(response.getheader("Retry-After")) if response.status in (429, 503) else None
    note = " (redirects are not followed)" if 300 <= response.status < 400 else ""
    return WebhookOutcome(
        "retry", status_code=response.status, detail=_short(f"HTTP {response.status}{note}: {snippet}"), retry_after=retry_after
    )


def webhook_record(*, owner: str, outcomes: dict[WebhookDelivery, WebhookOutcome], now: datetime | None = None) -> int:
    """Store attempts; only the lease holder writes. A retry past the 72 h window marks the delivery failed."""
    now = now or timezone.now()
    updated = 0
    with transaction.atomic():
        for delivery, outcome in outcomes.items():
            fields: dict[str, Any] = {
                "attempts": delivery.attempts + 1,
                "last_attempt_at": now,
                "last_status_code": outcome.status_code,
            }
            if outcome.kind == "delivered":
                fields.update(status=DeliveryStatus.DELIVERED, delivered_at=now, last_error="")
            elif outcome.kind == "failed" or now - delivery.created_at >= RETRY_WINDOW:
                reason = outcome.detail if outcome.kind == "failed" else f"gave up after 72 h of attempts; last: {outcome.detail}"
                fields.update(status=DeliveryStatus.FAILED, last_error=reason[:300])
            else:
                delay = webhook_backoff_seconds(delivery.attempts + 1, retry_after=outcome.retry_after)
                fields.update(next_attempt_at=now + timedelta(seconds=delay), last_error=outcome.detail[:300])
            updated += QUEUE.settle(owner=owner, pk=delivery.pk, **fields)
    return updated
