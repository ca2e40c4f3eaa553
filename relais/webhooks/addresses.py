"""Webhook addresses: https only (http to loopback in development), no private network in production, checked again
at delivery against the addresses actually connected to (no DNS rebinding)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

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


def webhook_target(url: str) -> tuple[str, int, list[str], str]:
    """Check the URL again and pick the addresses to connect to: (host, port, addresses, path). Raises ValidationError."""
    webhook_url_check(url, resolve=False)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if settings.PRODUCTION and (not addresses or any(not is_public_address(a) for a in addresses)):
        raise ValidationError("the address resolves to a private or local network; not sent")
    return host, port, [str(a) for a in addresses], (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
