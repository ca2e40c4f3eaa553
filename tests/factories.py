"""Test data builders shared by every test folder: pharmacies, staff, identities, screenings, API clients and bodies.

Fixtures that use them live in tests/conftest.py."""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from relais.accounts.models import Pharmacy, User
from relais.accounts.services import pharmacy_create
from relais.api.services import ASSERTION_TYPE
from relais.patients.services import PatientIdentity
from relais.screenings.inputs import ScreeningInput
from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED

STRONG_PASSWORD = "violet-tramway-cactus-41"


def make_pharmacy(finess: str, name: str) -> Pharmacy:
    return pharmacy_create(actor=None, name=name, finess=finess, address_line="1 rue du Test", postcode="75010", city="Paris")


def make_user(email: str, role: str, pharmacy: Pharmacy | None) -> User:
    return User.objects.create_user(email, STRONG_PASSWORD, full_name=email.split("@")[0], role=role, pharmacy=pharmacy)


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


def verified_client(user: User) -> Client:
    """A client logged in with password and a confirmed TOTP device, as after a real login."""
    device, _ = TOTPDevice.objects.get_or_create(user=user, name="test", defaults={"confirmed": True})
    client = Client()
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client


# --- API clients and request bodies ---------------------------------------------------------------------------

AUDIENCE = "http://testserver/api/v1/token"


def _keypair(kind: str = "ec") -> tuple[Any, str]:
    private = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def _assertion(private: Any, client_id: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": AUDIENCE, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    claims.update(overrides)
    algorithm = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, private, algorithm=algorithm)


def _token(client: Client, client_id: str, assertion: str) -> Any:
    return client.post(
        "/api/v1/token",
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )


BODY = {
    "patient": {"last_name": "MARTIN", "first_names": "Léa", "sex": "F", "date_of_birth": "1990-05-01", "phone": "06 12 34 56 78"},
    "device_id": "1232",
    "sampled_at": "2026-01-01T10:00:00+01:00",
    "results": {"sars-cov-2": "260415000"},
    "information_notice_given": True,
}


def _body(**overrides: Any) -> dict[str, Any]:
    body = {**BODY, "sampled_at": (timezone.now() - timedelta(minutes=5)).isoformat()}
    body.update(overrides)
    return body
