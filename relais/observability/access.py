"""Who may read /metrics: a bearer token (RELAIS_METRICS_TOKEN) or an address in RELAIS_METRICS_ALLOWED_ADDRESSES.

The client address is REMOTE_ADDR, which the trusted-proxy handling has already set to the real client; a forwarded
header is never read here. Anyone else gets the site's ordinary 404, as for a path that does not exist."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _parse(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"RELAIS_METRICS_ALLOWED_ADDRESSES: {entry!r} is not an address or a CIDR network") from exc
    return tuple(networks)


def allowed_networks() -> tuple[Network, ...]:
    entries: Iterable[str] = getattr(settings, "RELAIS_METRICS_ALLOWED_ADDRESSES", ())
    return _parse(tuple(e for e in entries if e.strip()))


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def token_matches(header: str, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time (digests of equal length, whatever was sent)."""
    scheme, _, value = header.strip().partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(_digest(value.strip()), _digest(token))


def address_allowed(remote_addr: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 from a dual-stack socket is 10.0.0.5
    return any(address.version == network.version and address in network for network in networks)


def may_read_metrics(request: HttpRequest) -> bool:
    token = getattr(settings, "RELAIS_METRICS_TOKEN", "")
    if token_matches(request.META.get("HTTP_AUTHORIZATION", ""), token):
        return True
    return address_allowed(request.META.get("REMOTE_ADDR", ""), allowed_networks())
