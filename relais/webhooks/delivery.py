"""Delivery: lease, POST to the checked address only, record with backoff (the webhook_worker command runs it)."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from relais.core import queue
from relais.webhooks.addresses import webhook_target
from relais.webhooks.models import DeliveryStatus, WebhookDelivery
from relais.webhooks.signing import SIGNATURE_HEADER, webhook_sign

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


def webhook_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()


def webhook_deliver_one(delivery: WebhookDelivery) -> WebhookOutcome:
    """One POST attempt. Touches no database (runs with the delivery and its webhook already loaded)."""
    webhook = delivery.webhook
    if webhook.disabled_at is not None or webhook.client.revoked_at is not None:
        return WebhookOutcome("failed", detail="the webhook was disabled (or its client revoked) before delivery")
    try:
        host, port, addresses, path = webhook_target(webhook.url)
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
