"""Webhook test helpers: an API client of the pharmacy (its screenings are the ones a webhook hears of)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from relais.api.models import ApiClient
from relais.api.services import apiclient_create


@pytest.fixture
def api_client(pharmacy: Any, admin: Any) -> ApiClient:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return apiclient_create(actor=admin, pharmacy=pharmacy, name="LGO test", public_key_pem=pem)
