"""Shared fixtures: two pharmacies and named users (owner, colleague, stranger, admin, operator, auditor)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone, translation
from django_otp.plugins.otp_totp.models import TOTPDevice

from relais.accounts.models import Pharmacy, Role, User
from relais.accounts.services import pharmacy_create
from relais.core.context import request_context
from relais.intake.services import screening_record
from relais.patients.services import PatientIdentity, patient_register
from relais.screenings.inputs import ScreeningInput
from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED

STRONG_PASSWORD = "violet-tramway-cactus-41"


@pytest.fixture(autouse=True)
def _test_context() -> Iterator[None]:
    # Service messages are asserted in English; pages pick their language per request.
    with request_context(request_id="test", client_ip="127.0.0.1", channel="test"), translation.override("en"):
        yield


def make_pharmacy(finess: str, name: str) -> Pharmacy:
    return pharmacy_create(actor=None, name=name, finess=finess, address_line="1 rue du Test", postcode="75010", city="Paris")


def make_user(email: str, role: str, pharmacy: Pharmacy | None) -> User:
    return User.objects.create_user(email, STRONG_PASSWORD, full_name=email.split("@")[0], role=role, pharmacy=pharmacy)


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


def identity(**overrides: Any) -> PatientIdentity:
    values: dict[str, Any] = {
        "last_name": "DURAND-TESTEUR",
        "first_names": "Camille",
        "sex": "F",
        "date_of_birth": date(1994, 3, 12),
        "nir": "294037512000591",
        "address_line": "12 rue de la Paix",
        "postcode": "75002",
        "city": "Paris",
        "country": "FR",
        "phone": "+33612345678",
        "email": "camille.durand@example.org",
    }
    values.update(overrides)
    return PatientIdentity(**values)


@pytest.fixture
def patient(owner: User) -> Any:
    return patient_register(actor=owner, identity=identity())


def screening_input(**overrides: Any) -> ScreeningInput:
    values: dict[str, Any] = {
        "device_id": "1232",
        "specimen_type": DEFAULT_SPECIMEN,
        "sampled_at": timezone.now() - timedelta(minutes=10),
        "results": {"sars-cov-2": RESULT_NOT_DETECTED},
        "information_notice_given": True,
    }
    values.update(overrides)
    return ScreeningInput(**values)


@pytest.fixture
def screening(owner: User, patient: Any) -> Any:
    return screening_record(actor=owner, patient_id=patient.pk, data=screening_input())


def verified_client(user: User) -> Client:
    """A client logged in with password and a confirmed TOTP device, as after a real login."""
    device, _ = TOTPDevice.objects.get_or_create(user=user, name="test", defaults={"confirmed": True})
    client = Client()
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client


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
