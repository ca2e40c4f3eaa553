"""Lockout behind a trusted proxy: per (account, client) pair, plus a higher per-client ceiling against spraying."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, override_settings

from relais.core.proxy import parse_trusted_proxies
from tests.factories import STRONG_PASSWORD

CLIENT_A = "198.51.100.10"
CLIENT_B = "198.51.100.20"

pytestmark = pytest.mark.django_db


def _login(email: str, password: str, *, client_ip: str, peer: str = "127.0.0.1", forwarded_for: str | None = None) -> Any:
    headers = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded_for or client_ip, "HTTP_ACCEPT_LANGUAGE": "en"}
    return Client().post("/login/", {"username": email, "password": password}, **headers)


@override_settings(RELAIS_TRUSTED_PROXIES=parse_trusted_proxies("127.0.0.1"))
def test_one_clients_failures_do_not_lock_the_owner_elsewhere(owner: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(owner.email, "wrong-password-123", client_ip=CLIENT_A).status_code == 200
    assert _login(owner.email, "wrong-password-123", client_ip=CLIENT_A).status_code == 429  # the 5th failure locks
    assert _login(owner.email, STRONG_PASSWORD, client_ip=CLIENT_A).status_code == 429  # A is locked for this account
    assert _login(owner.email, STRONG_PASSWORD, client_ip=CLIENT_B).status_code == 302  # the owner, from B, logs in
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {CLIENT_A}  # recorded under the client


@override_settings(RELAIS_TRUSTED_PROXIES=parse_trusted_proxies("127.0.0.1"))
def test_spoofed_chain_counts_against_the_real_client(owner: Any) -> None:
    # A attacker prepending addresses does not escape its own count: the hop our proxy added is the client.
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(owner.email, "wrong-password-123", client_ip=CLIENT_A, forwarded_for=f"203.0.113.{n}, {CLIENT_A}")
    assert _login(owner.email, STRONG_PASSWORD, client_ip=CLIENT_A, forwarded_for=f"203.0.113.99, {CLIENT_A}").status_code == 429
    assert _login(owner.email, STRONG_PASSWORD, client_ip=CLIENT_B).status_code == 302


@override_settings(RELAIS_TRUSTED_PROXIES=parse_trusted_proxies("127.0.0.1"))
def test_untrusted_peer_cannot_pick_its_address_to_dodge_lockout(owner: Any) -> None:
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(owner.email, "wrong-password-123", client_ip=f"198.51.100.{n}", peer="203.0.113.50")
    assert _login(owner.email, STRONG_PASSWORD, client_ip=CLIENT_B, peer="203.0.113.50").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.50"}


@override_settings(RELAIS_TRUSTED_PROXIES=parse_trusted_proxies("127.0.0.1"), RELAIS_LOGIN_FAILURES_PER_ADDRESS=8)
def test_one_client_spraying_usernames_is_stopped(owner: Any, colleague: Any) -> None:
    for n in range(8):
        assert _login(f"nobody{n}@test.example", "wrong-password-123", client_ip=CLIENT_A).status_code in {200, 429}
    # A's address is over the per-address ceiling: even a right password for an account it never tried is refused.
    assert _login(colleague.email, STRONG_PASSWORD, client_ip=CLIENT_A).status_code == 429
    assert _login(owner.email, STRONG_PASSWORD, client_ip=CLIENT_B).status_code == 302


@override_settings(RELAIS_TRUSTED_PROXIES=parse_trusted_proxies("127.0.0.1"))
def test_below_the_ceiling_a_client_with_a_few_typos_still_logs_in(owner: Any, colleague: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(owner.email, "wrong-password-123", client_ip=CLIENT_A)
        _login(colleague.email, "wrong-password-123", client_ip=CLIENT_A)
    assert 2 * (settings.AXES_FAILURE_LIMIT - 1) < settings.RELAIS_LOGIN_FAILURES_PER_ADDRESS
    assert _login(owner.email, STRONG_PASSWORD, client_ip=CLIENT_A).status_code == 302


def test_ceiling_per_address_is_well_above_the_per_account_limit() -> None:
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_HANDLER == "relais.accounts.lockout.LockoutHandler"
    assert settings.RELAIS_LOGIN_FAILURES_PER_ADDRESS >= 3 * settings.AXES_FAILURE_LIMIT
