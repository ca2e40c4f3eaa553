"""API test helpers: a registered client with its private key, and a bearer token for it."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.test import Client
from django.utils import timezone

from relais.api.models import ApiClient
from relais.api.services import ASSERTION_TYPE, apiclient_create

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
