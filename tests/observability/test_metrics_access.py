"""/metrics answers a scraper holding the token or sitting at an allowed address, and anyone else the ordinary 404."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from relais.accounts.access import access_rule
from relais.core.proxy import parse_trusted_proxies
from relais.observability.access import address_allowed, allowed_networks, token_matches
from relais.observability.views import metrics

pytestmark = pytest.mark.django_db
TOKEN = "m3tr1cs-" + "k" * 40


def _unmasked(page: bytes) -> bytes:
    """The page without what differs on every page: its CSRF token (masked afresh) and its own path (language switch)."""
    return re.sub(rb'name="(csrfmiddlewaretoken|next)" (type="hidden" )?value="[^"]+"', b"", page)


def _get(client: Client, **extra: Any) -> Any:
    return client.get("/metrics", **extra)


@override_settings(RELAIS_METRICS_TOKEN=TOKEN, RELAIS_METRICS_ALLOWED_ADDRESSES=[])
def test_without_the_token_it_is_the_same_404_as_a_path_that_does_not_exist(client: Client) -> None:
    refused = _get(client)
    missing = client.get("/metrics/")  # no URL pattern at all
    assert refused.status_code == missing.status_code == 404
    assert _unmasked(refused.content) == _unmasked(missing.content)
    assert refused["Content-Type"] == missing["Content-Type"]


@override_settings(RELAIS_METRICS_TOKEN=TOKEN, RELAIS_METRICS_ALLOWED_ADDRESSES=[])
@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-token-of-the-same-kind-xxxxxxxxxxxxxxxxxxx",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        "",
    ],
)
def test_a_wrong_token_is_refused(client: Client, header: str) -> None:
    assert _get(client, HTTP_AUTHORIZATION=header).status_code == 404


@override_settings(RELAIS_METRICS_TOKEN=TOKEN, RELAIS_METRICS_ALLOWED_ADDRESSES=[])
def test_the_right_token_gets_the_exposition(client: Client) -> None:
    answer = _get(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain; version=0.0.4")
    assert answer["Cache-Control"] == "no-store"
    assert b"relais_queue_depth" in answer.content
    # Only GET and HEAD: another method is the same 404, not a 405 that would tell the path exists.
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404
    # The token never counts from the query string (it would land in access logs).
    assert client.get(f"/metrics?token={TOKEN}").status_code == 404


@override_settings(RELAIS_METRICS_TOKEN="", RELAIS_METRICS_ALLOWED_ADDRESSES=[])
def test_with_nothing_configured_nobody_reads_it(client: Client) -> None:
    assert _get(client, HTTP_AUTHORIZATION="Bearer ").status_code == 404
    assert _get(client, REMOTE_ADDR="127.0.0.1").status_code == 404


@override_settings(RELAIS_METRICS_TOKEN="", RELAIS_METRICS_ALLOWED_ADDRESSES=["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"])
@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("10.1.2.3", 200),
        ("::ffff:10.1.2.3", 200),
        ("2001:db8::5", 200),
        ("192.0.2.7", 200),
        ("192.0.2.8", 404),
        ("127.0.0.1", 404),
        ("", 404),
    ],
)
def test_an_allowed_address_reads_it_without_a_token(client: Client, address: str, status: int) -> None:
    assert _get(client, REMOTE_ADDR=address).status_code == status


@override_settings(
    RELAIS_METRICS_TOKEN="",
    RELAIS_METRICS_ALLOWED_ADDRESSES=["10.0.0.0/8"],
    RELAIS_TRUSTED_PROXIES=parse_trusted_proxies("192.168.0.1"),
)
def test_the_address_is_the_one_the_trusted_proxy_handling_resolved(client: Client) -> None:
    # From the trusted proxy, its X-Forwarded-For names the client; from anyone else the header is ignored.
    assert _get(client, REMOTE_ADDR="192.168.0.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    assert _get(client, REMOTE_ADDR="192.168.0.9", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 404
    assert _get(client, REMOTE_ADDR="192.168.0.1", HTTP_X_FORWARDED_FOR="172.16.0.1").status_code == 404


def test_a_bad_address_list_refuses_to_start() -> None:
    with override_settings(RELAIS_METRICS_ALLOWED_ADDRESSES=["10.0.0.0/8", "not-a-network"]):
        with pytest.raises(ImproperlyConfigured, match="not-a-network"):
            allowed_networks()


def test_token_and_address_checks() -> None:
    assert token_matches(f"Bearer {TOKEN}", TOKEN) and token_matches(f"bearer  {TOKEN} ", TOKEN)
    assert not token_matches(f"Bearer {TOKEN}", "")  # no token configured: no header opens it
    assert not address_allowed("10.0.0.1", ())
    assert not address_allowed("not an address", allowed_networks())


def test_the_view_declares_itself_public_with_its_own_check() -> None:
    rule = access_rule(metrics)
    assert rule is not None and rule.public
