"""Webhooks: where a client is told that its screenings were acknowledged or rejected downstream."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from relais.accounts.models import Role, User
from relais.api.models import ApiClient, Webhook
from relais.audit.services import audit_record

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
