"""Trusted proxies (relais/core/proxy.py): forwarding headers count only from a configured proxy, for audit and scheme."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, RequestFactory, override_settings

from relais.audit.models import AuditEvent
from relais.core.proxy import TrustedProxies, apply_forwarding, client_address, parse_trusted_proxies, resolve_client

LOCAL = parse_trusted_proxies("127.0.0.1")


def _resolve(peer: str, forwarded_for: str | None, trusted: str = "127.0.0.1") -> str:
    return resolve_client(peer=peer, forwarded_for=forwarded_for, trusted=parse_trusted_proxies(trusted))


def test_parse_accepts_addresses_networks_and_unix() -> None:
    parsed = parse_trusted_proxies(" unix, 127.0.0.1 ,::1, 10.0.0.0/8, fd00::/8,")
    assert parsed.unix
    assert [str(n) for n in parsed.networks] == ["127.0.0.1/32", "::1/128", "10.0.0.0/8", "fd00::/8"]
    assert not parse_trusted_proxies("")
    assert parsed.trusts("") and not parse_trusted_proxies("127.0.0.1").trusts("")
    assert parsed.trusts("10.2.3.4") and parsed.trusts("::ffff:10.2.3.4") and not parsed.trusts("11.0.0.1")


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.1/8", "300.1.1.1", "0.0.0.0/0", "::/0", "10.0.0.0/33", "*"])
def test_parse_refuses_a_bad_entry_naming_it(entry: str) -> None:
    with pytest.raises(ValueError, match=f"entry '{entry.replace('*', '[*]')}'"):
        parse_trusted_proxies(f"127.0.0.1,{entry}")


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="subprocess on its own SQLite settings: runs in the SQLite suite")
def test_settings_refuse_to_start_on_a_bad_entry() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RELAIS_TRUSTED_PROXIES"}
    env |= {"RELAIS_ENV": "test", "DJANGO_SETTINGS_MODULE": "relais.settings", "RELAIS_TRUSTED_PROXIES": "unix,10.0.0.300"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "Refusing to start: RELAIS_TRUSTED_PROXIES entry '10.0.0.300'" in result.stderr


def test_empty_by_default() -> None:
    assert settings.RELAIS_TRUSTED_PROXIES == TrustedProxies()


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # untrusted peer: header ignored
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # spoofed left part: the hop our proxy added wins
        ("127.0.0.1", "1.2.3.4, 198.51.100.1, 127.0.0.1", "198.51.100.1"),  # trusted hops skipped
        ("127.0.0.1", "127.0.0.1, 127.0.0.1", "127.0.0.1"),  # every hop trusted: the leftmost
        ("127.0.0.1", "198.51.100.1, not-an-ip", "127.0.0.1"),  # malformed nearest hop: the peer
        ("127.0.0.1", "not-an-ip, 198.51.100.1", "198.51.100.1"),  # malformed beyond the client: never read
        ("127.0.0.1", "198.51.100.1:4711", "127.0.0.1"),  # ports are not addresses
        ("127.0.0.1", " 2001:DB8::1 ", "2001:db8::1"),
        ("127.0.0.1", "[2001:db8::1]", "2001:db8::1"),
        ("127.0.0.1", "::ffff:198.51.100.1", "198.51.100.1"),
        ("::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1"),  # IPv4-mapped peer of a dual-stack socket
        ("127.0.0.1", ",".join(["198.51.100.1"] * 40), "127.0.0.1"),  # absurd chain
        ("", "198.51.100.1", ""),  # a Unix-socket peer is not trusted unless configured
    ],
)
def test_resolve_client(peer: str, forwarded_for: str | None, client: str) -> None:
    assert _resolve(peer, forwarded_for) == client


def test_unix_socket_peer_trusted_when_configured() -> None:
    assert _resolve("", "198.51.100.1", "unix") == "198.51.100.1"
    assert _resolve("", "198.51.100.1, 10.0.0.7", "unix,10.0.0.0/8") == "198.51.100.1"
    assert _resolve("", None, "unix") == ""


@override_settings(RELAIS_TRUSTED_PROXIES=LOCAL)
def test_middleware_rewrites_once_and_drops_headers() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1", HTTP_X_FORWARDED_PROTO="https")
    assert client_address(request) == "198.51.100.1"  # before the middleware: resolved from the headers
    apply_forwarding(request)
    apply_forwarding(request)  # idempotent: the resolved client is not itself re-read as a proxy
    assert request.META["REMOTE_ADDR"] == "198.51.100.1" and request.META["RELAIS_PEER_ADDR"] == "127.0.0.1"
    assert client_address(request) == "198.51.100.1"
    assert request.is_secure()
    assert "HTTP_X_FORWARDED_FOR" not in request.META and "HTTP_X_FORWARDED_PROTO" not in request.META


def _audited_ip(as_user: Any, owner: Any, patient: Any, **headers: str) -> Any:
    response = as_user(owner).get(f"/patients/{patient.pk}/", **headers)
    assert response.status_code == 200
    return AuditEvent.objects.filter(action="patient.view").latest("id").client_ip


def test_untrusted_peer_headers_are_ignored_in_audit(as_user: Any, owner: Any, patient: Any) -> None:
    with override_settings(RELAIS_TRUSTED_PROXIES=LOCAL):
        ip = _audited_ip(as_user, owner, patient, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert ip == "203.0.113.7"
    # No proxy configured (the default): even loopback's header is ignored.
    assert _audited_ip(as_user, owner, patient, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1") == "127.0.0.1"


@override_settings(RELAIS_TRUSTED_PROXIES=LOCAL)
def test_trusted_peer_headers_are_honoured_in_audit(as_user: Any, owner: Any, patient: Any) -> None:
    assert _audited_ip(as_user, owner, patient, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1") == "198.51.100.1"
    spoofed = _audited_ip(as_user, owner, patient, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.2")
    assert spoofed == "198.51.100.2"


@override_settings(RELAIS_TRUSTED_PROXIES=parse_trusted_proxies("unix"))
def test_unix_socket_proxy_honoured_in_audit(as_user: Any, owner: Any, patient: Any) -> None:
    assert _audited_ip(as_user, owner, patient, REMOTE_ADDR="", HTTP_X_FORWARDED_FOR="198.51.100.3") == "198.51.100.3"


@override_settings(RELAIS_TRUSTED_PROXIES=LOCAL, SECURE_SSL_REDIRECT=True)
def test_forwarded_proto_only_from_a_trusted_proxy(client: Any) -> None:
    # An untrusted peer claiming https is still on plain http: redirected.
    untrusted = client.get("/login/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_PROTO="https")
    assert untrusted.status_code == 301 and untrusted["Location"].startswith("https://")
    # Behind the trusted proxy over https: served, no redirect loop, HSTS only on secure responses.
    with override_settings(SECURE_HSTS_SECONDS=3600):  # SecurityMiddleware reads it when built: a fresh client
        trusted = Client().get("/login/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    assert trusted.status_code == 200 and "Strict-Transport-Security" in trusted
    # The proxy saying the client used http: redirected to https.
    plain = client.get("/login/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="http")
    assert plain.status_code == 301


def test_proxy_middleware_runs_first() -> None:
    assert settings.MIDDLEWARE[0] == "relais.core.proxy.TrustedProxyMiddleware"
    assert not getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    assert settings.AXES_CLIENT_IP_CALLABLE == "relais.core.proxy.client_address"


def test_unix_socket_peer_without_unix_entry_is_flagged_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from relais.core import proxy

    monkeypatch.setattr(proxy, "_warned_unix", False)
    for _ in range(2):
        request = RequestFactory().get("/", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR="198.51.100.1")
        with override_settings(RELAIS_TRUSTED_PROXIES=LOCAL):
            apply_forwarding(request)
        assert request.META["REMOTE_ADDR"] == ""
    assert [r.message for r in caplog.records if "lacks 'unix'" in r.message] != []
    assert len([r for r in caplog.records if "lacks 'unix'" in r.message]) == 1
