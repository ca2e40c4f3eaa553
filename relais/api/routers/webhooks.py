"""The client's own webhook: where Relais sends signed notifications, and the keys that verify them."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Router, Status

from relais.api.common import ERRORS, api_client, field_errors
from relais.api.models import ApiClient
from relais.api.schemas import ErrorOut, JwksOut, WebhookIn, WebhookOut
from relais.core.context import request_context
from relais.webhooks.models import Webhook
from relais.webhooks.services import webhook_disable, webhook_register
from relais.webhooks.signing import webhook_jwks

router = Router()


@router.get("/webhook-keys", response={200: JwksOut, 404: ErrorOut}, auth=None, tags=["webhooks"])
def webhook_keys(request: HttpRequest) -> Any:
    """The public keys (JWK set) that verify the Relais-Signature header of webhook notifications. Cache; refetch on an unknown kid."""
    return Status(200, JwksOut(**webhook_jwks()))


def _webhook(client: ApiClient) -> Webhook | None:
    return Webhook.objects.filter(client=client, disabled_at__isnull=True).order_by("-created_at").first()


@router.get("/webhook", response={200: WebhookOut, 404: ErrorOut, **ERRORS}, tags=["webhooks"])
def get_webhook(request: HttpRequest) -> Any:
    """Where notifications are sent (404 when none is registered)."""
    webhook = _webhook(api_client(request))
    if webhook is None:
        return Status(404, ErrorOut(error="not_found", message="No webhook registered: PUT /webhook to register one."))
    return Status(200, WebhookOut(url=webhook.url, created_at=webhook.created_at))


@router.put("/webhook", response={200: WebhookOut, **ERRORS}, tags=["webhooks"])
def put_webhook(request: HttpRequest, body: WebhookIn) -> Any:
    """Register (or replace) the https address that receives signed notifications when a screening is acknowledged or rejected
    by the national platform. Verify the Relais-Signature header with the keys at GET /webhook-keys."""
    client = api_client(request)
    try:
        with request_context(channel="api"):
            webhook = webhook_register(actor=client.service_user, client=client, url=body.url)
    except ValidationError as exc:
        return Status(422, ErrorOut(error="invalid_webhook", message="The address was not registered.", fields=field_errors(exc)))
    return Status(200, WebhookOut(url=webhook.url, created_at=webhook.created_at))


@router.delete("/webhook", response={204: None, **ERRORS}, tags=["webhooks"])
def delete_webhook(request: HttpRequest) -> Any:
    """Stop notifications."""
    client = api_client(request)
    webhook = _webhook(client)
    if webhook is not None:
        with request_context(channel="api"):
            webhook_disable(actor=client.service_user, webhook=webhook)
    return Status(204, None)
