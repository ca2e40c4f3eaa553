"""Shared fixtures: two pharmacies, named users (owner, colleague, stranger, admin, operator, auditor), API clients.

The builders they use live in tests/factories.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from relais.accounts.models import Pharmacy, Role, User
from relais.api.models import ApiClient
from relais.api.services import apiclient_create
from relais.core.context import request_context
from relais.intake.services import screening_record
from relais.patients.services import patient_register
from tests.factories import _assertion, _keypair, _token, identity, make_pharmacy, make_user, screening_input, verified_client


@pytest.fixture(autouse=True)
def _test_context() -> Iterator[None]:
    # Service messages are asserted in English; pages pick their language per request.
    with request_context(request_id="test", client_ip="127.0.0.1", channel="test"), translation.override("en"):
        yield


@pytest.fixture
def pharmacy(db: Any) -> Pharmacy:
    return make_pharmacy("750000010", "Pharmacie du Test")


@pytest.fixture
def other_pharmacy(db: Any) -> Pharmacy:
    return make_pharmacy("690001235", "Pharmacie Ailleurs")


@pytest.fixture
def owner(pharmacy: Pharmacy) -> User:
    return make_user("owner@test.example", Role.PHARMACIST, pharmacy)


@pytest.fixture
def colleague(pharmacy: Pharmacy) -> User:
    return make_user("colleague@test.example", Role.PHARMACIST, pharmacy)


@pytest.fixture
def admin(pharmacy: Pharmacy) -> User:
    return make_user("admin@test.example", Role.PHARMACY_ADMIN, pharmacy)


@pytest.fixture
def stranger(other_pharmacy: Pharmacy) -> User:
    return make_user("stranger@test.example", Role.PHARMACIST, other_pharmacy)


@pytest.fixture
def operator(db: Any) -> User:
    return make_user("operator@test.example", Role.PLATFORM_OPERATOR, None)


@pytest.fixture
def auditor(db: Any) -> User:
    return make_user("auditor@test.example", Role.AUDITOR, None)


@pytest.fixture
def patient(owner: User) -> Any:
    return patient_register(actor=owner, identity=identity())


@pytest.fixture
def screening(owner: User, patient: Any) -> Any:
    return screening_record(actor=owner, patient_id=patient.pk, data=screening_input())


@pytest.fixture
def as_user() -> Any:
    return verified_client


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Iterator[None]:
    from relais.core import crypto

    crypto.forget_keys()  # each test's transaction is rolled back, keys with it
    yield
    crypto.forget_keys()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the summary lines tests recorded (e.g. the reliability test's), even under xdist."""
    lines = [
        value
        for key in ("passed", "failed")
        for report in terminalreporter.stats.get(key, [])
        if getattr(report, "when", "") == "call"
        for name, value in getattr(report, "user_properties", [])
        if name == "summary"
    ]
    for line in lines:
        terminalreporter.write_line(line)


# --- API clients (private_key_jwt) --------------------------------------------------------------------------------


@pytest.fixture
def registered(pharmacy: Any, admin: Any) -> tuple[ApiClient, Any]:
    private, public = _keypair()
    return apiclient_create(actor=admin, pharmacy=pharmacy, name="LGO test", public_key_pem=public), private


@pytest.fixture
def bearer(client: Client, registered: tuple[ApiClient, Any]) -> dict[str, str]:
    api_client, private = registered
    response = _token(client, str(api_client.pk), _assertion(private, str(api_client.pk)))
    assert response.status_code == 200, response.content
    return {"HTTP_AUTHORIZATION": f"Bearer {response.json()['access_token']}", "HTTP_ACCEPT_LANGUAGE": "en"}
