"""Trusted reverse proxies: the client's address and scheme come from forwarding headers only when a trusted proxy sent them.

Configuration, read once at start-up (relais/settings.py):

    RELAIS_TRUSTED_PROXIES=unix,127.0.0.1,::1,10.0.0.0/8

Comma-separated entries, empty by default (then no forwarding header is ever honoured). Each entry is one of:

- an IPv4 or IPv6 address: ``127.0.0.1``, ``::1``;
- a network in CIDR notation: ``10.0.0.0/8``, ``fd00::/8`` (host bits must be zero; ``/0`` is refused);
- the word ``unix``: a peer on a Unix-domain socket, which WSGI servers report as an empty ``REMOTE_ADDR``
  (nginx proxying to gunicorn's socket). Without it an empty peer address is never trusted.

Anything else refuses to start, naming the entry.

Per request (``TrustedProxyMiddleware``, first in MIDDLEWARE):

- the peer (``REMOTE_ADDR``) is not trusted: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are ignored;
- the peer is trusted: ``X-Forwarded-For`` is read from the right, skipping trusted hops; the first untrusted address is
  the client (if every hop is trusted, the leftmost one). A malformed hop met on the way stops the walk and the client is
  the peer itself, since nothing to its left can be vouched for. ``X-Forwarded-Proto`` (``https`` or ``http``) sets
  the request's scheme, which ``request.is_secure()``, SECURE_SSL_REDIRECT and the CSRF origin check read.

The middleware then writes the resolved client into ``REMOTE_ADDR`` (the peer is kept in ``RELAIS_PEER_ADDR``) and drops
both headers from ``request.META``, so lockout (django-axes), audit events and any rate limit read one address.
The nginx in deploy/ overwrites both headers (``X-Forwarded-For $remote_addr``, ``X-Forwarded-Proto $scheme``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNIX_SOCKET = "unix"
PEER_KEY = "RELAIS_PEER_ADDR"  # not an HTTP_* key: a client cannot set it through a header
_FORWARDED_FOR = "HTTP_X_FORWARDED_FOR"
_FORWARDED_PROTO = "HTTP_X_FORWARDED_PROTO"
_MAX_HOPS = 32  # a longer chain is not a real proxy path: past this, stop at the peer
_warned_unix = False


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[IPNetwork, ...] = ()
    unix: bool = False

    def __bool__(self) -> bool:
        return bool(self.networks) or self.unix

    def trusts(self, address: str) -> bool:
        if address == "":
            return self.unix
        ip = parse_address(address)
        return ip is not None and self.trusts_ip(ip)

    def trusts_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


def parse_trusted_proxies(value: str) -> TrustedProxies:
    """Parse RELAIS_TRUSTED_PROXIES; raises ValueError naming the first bad entry."""
    networks: list[IPNetwork] = []
    unix = False
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        if entry.lower() == UNIX_SOCKET:
            unix = True
            continue
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            raise ValueError(f"RELAIS_TRUSTED_PROXIES entry {entry!r} is not an IP address, a CIDR network or 'unix' ({exc})") from None
        if network.prefixlen == 0:
            raise ValueError(f"RELAIS_TRUSTED_PROXIES entry {entry!r} would trust every address")
        networks.append(network)
    return TrustedProxies(networks=tuple(networks), unix=unix)


def parse_address(text: str) -> IPAddress | None:
    """An IP address as a proxy or WSGI server writes it, or None if malformed; IPv4-mapped IPv6 reads as IPv4."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return None
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
    return ip


def _normalised(address: str) -> str:
    ip = parse_address(address)
    return address if ip is None else str(ip)


def resolve_client(*, peer: str, forwarded_for: str | None, trusted: TrustedProxies) -> str:
    """The client's address: the peer's, unless a trusted peer forwarded the request for someone else."""
    if not trusted.trusts(peer) or not forwarded_for:
        return _normalised(peer)
    hops = forwarded_for.split(",")
    if len(hops) > _MAX_HOPS:
        return _normalised(peer)
    client = _normalised(peer)
    for hop in reversed(hops):
        ip = parse_address(hop)
        if ip is None:
            return _normalised(peer)
        client = str(ip)
        if not trusted.trusts_ip(ip):
            break
    return client


def resolve_scheme(*, peer: str, forwarded_proto: str | None, trusted: TrustedProxies) -> str | None:
    """The scheme a trusted proxy says the client used ("https"/"http"), or None to keep the connection's own."""
    if not forwarded_proto or not trusted.trusts(peer):
        return None
    value = forwarded_proto.split(",", 1)[0].strip().lower()
    return value if value in {"https", "http"} else None


def _trusted() -> TrustedProxies:
    value = getattr(settings, "RELAIS_TRUSTED_PROXIES", TrustedProxies())
    return value if isinstance(value, TrustedProxies) else parse_trusted_proxies(str(value))


def client_address(request: HttpRequest) -> str:
    """The resolved client address of a request (also django-axes' AXES_CLIENT_IP_CALLABLE)."""
    meta = request.META
    if PEER_KEY in meta:  # already resolved by TrustedProxyMiddleware
        return str(meta.get("REMOTE_ADDR", ""))
    return resolve_client(peer=str(meta.get("REMOTE_ADDR", "")), forwarded_for=meta.get(_FORWARDED_FOR), trusted=_trusted())


def apply_forwarding(request: HttpRequest) -> None:
    """Rewrite REMOTE_ADDR and the scheme from a trusted proxy's headers, once; drop the headers either way."""
    meta = request.META
    if PEER_KEY in meta:
        return
    trusted = _trusted()
    peer = str(meta.get("REMOTE_ADDR", ""))
    if peer == "" and not trusted.unix:
        _warn_untrusted_socket()
    client = resolve_client(peer=peer, forwarded_for=meta.get(_FORWARDED_FOR), trusted=trusted)
    scheme = resolve_scheme(peer=peer, forwarded_proto=meta.get(_FORWARDED_PROTO), trusted=trusted)
    meta[PEER_KEY] = peer
    meta["REMOTE_ADDR"] = client
    if scheme is not None:
        # Django's WSGIRequest reads its scheme from the environ (request.META) when SECURE_PROXY_SSL_HEADER is unset.
        meta["wsgi.url_scheme"] = scheme
    meta.pop(_FORWARDED_FOR, None)
    meta.pop(_FORWARDED_PROTO, None)


def _warn_untrusted_socket() -> None:
    global _warned_unix
    if not _warned_unix:
        _warned_unix = True
        # Every client would share one unknown address (lockout, audit): the operator must add `unix` or fix the bind.
        log.warning("Requests arrive on a Unix socket but RELAIS_TRUSTED_PROXIES lacks 'unix': client addresses are unknown")


class TrustedProxyMiddleware:
    """First middleware: everything after it (SecurityMiddleware, axes, audit) sees the real client and scheme."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        apply_forwarding(request)
        return self.get_response(request)
