from __future__ import annotations

import io
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from relais.api.models import AccessToken, ApiClient
from relais.api.services import apiclient_add_key, apiclient_create, apiclient_revoke_key
from relais.audit.models import AuditEvent
from relais.screenings.models import Screening
from tests.factories import AUDIENCE, BODY, _assertion, _body, _keypair, _token  # noqa: F401  (re-exported)


def test_token_then_submit_then_status(client: Client, bearer: dict[str, str], registered: tuple[ApiClient, Any]) -> None:
    response = client.post("/api/v1/screenings", _body(), content_type="application/json", **bearer)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "final" and data["transfer"]["status"] == "pending" and len(data["transfer"]["message_id"]) == 20
    status = client.get(f"/api/v1/screenings/{data['screening_id']}", **bearer)
    assert status.status_code == 200 and status.json()["screening_id"] == data["screening_id"]
    screening = Screening.objects.get(pk=data["screening_id"])
    assert screening.pharmacy_id == registered[0].pharmacy_id
    assert AuditEvent.objects.filter(action="screening.create", actor_id=registered[0].service_user_id).exists()


def test_the_server_stores_no_usable_secret(bearer: dict[str, str], registered: tuple[ApiClient, Any]) -> None:
    token = bearer["HTTP_AUTHORIZATION"].split()[1]
    assert not AccessToken.objects.filter(token_hash=token).exists()
    key = registered[0].keys.get()
    assert "PRIVATE" not in key.public_key_pem


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "https://elsewhere.example/token"}, "audience"),
        ({"exp": int(time.time()) + 3600}, "too long"),
        ({"jti": None}, "jti"),
        ({"sub": str(uuid.uuid4())}, "sub"),
    ],
)
def test_bad_assertions_are_refused_with_a_clear_reason(
    client: Client, registered: tuple[ApiClient, Any], overrides: dict[str, Any], expected: str
) -> None:
    api_client, private = registered
    response = _token(client, str(api_client.pk), _assertion(private, str(api_client.pk), **overrides))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client" and expected in response.json()["error_description"]


def test_replayed_assertion_is_refused(client: Client, registered: tuple[ApiClient, Any]) -> None:
    api_client, private = registered
    assertion = _assertion(private, str(api_client.pk))
    assert _token(client, str(api_client.pk), assertion).status_code == 200
    again = _token(client, str(api_client.pk), assertion)
    assert again.status_code == 401 and "already used" in again.json()["error_description"]


def test_wrong_key_is_refused(client: Client, registered: tuple[ApiClient, Any]) -> None:
    api_client, _private = registered
    other, _public = _keypair()
    response = _token(client, str(api_client.pk), _assertion(other, str(api_client.pk)))
    assert response.status_code == 401 and "signature" in response.json()["error_description"]


def test_rotation_two_keys_then_revocation(client: Client, admin: Any, registered: tuple[ApiClient, Any]) -> None:
    api_client, old_private = registered
    new_private, new_public = _keypair("rsa")
    new_key = apiclient_add_key(actor=admin, client=api_client, public_key_pem=new_public)
    cid = str(api_client.pk)
    assert _token(client, cid, _assertion(old_private, cid)).status_code == 200
    assert _token(client, cid, _assertion(new_private, cid)).status_code == 200
    apiclient_revoke_key(actor=admin, key=api_client.keys.exclude(pk=new_key.pk).get())
    assert _token(client, cid, _assertion(old_private, cid)).status_code == 401
    assert _token(client, cid, _assertion(new_private, cid)).status_code == 200


def test_weak_or_wrong_keys_are_refused_at_registration(pharmacy: Any, admin: Any, colleague: Any) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 (the point of the test)
    weak_pem = weak.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(ValidationError, match="2048"):
        apiclient_create(actor=admin, pharmacy=pharmacy, name="x", public_key_pem=weak_pem)
    with pytest.raises(ValidationError, match="PEM"):
        apiclient_create(actor=admin, pharmacy=pharmacy, name="x", public_key_pem="not a key")
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        apiclient_create(actor=colleague, pharmacy=pharmacy, name="x", public_key_pem=_keypair()[1])


def test_apiclient_create_command(pharmacy: Any, tmp_path: Path) -> None:
    private, public = _keypair()
    (tmp_path / "public.pem").write_text(public)
    out = io.StringIO()
    call_command("apiclient_create", "--pharmacy", pharmacy.finess, "--public-key", str(tmp_path / "public.pem"), stdout=out)
    assert ApiClient.objects.filter(pk=uuid.UUID(out.getvalue().strip())).exists()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (tmp_path / "private.pem").write_text(private_pem)
    with pytest.raises(CommandError, match="PRIVATE"):
        call_command("apiclient_create", "--pharmacy", pharmacy.finess, "--public-key", str(tmp_path / "private.pem"))


def test_requests_without_a_valid_token_are_refused(client: Client, db: Any) -> None:
    assert client.post("/api/v1/screenings", _body(), content_type="application/json").status_code == 401
    assert client.post("/api/v1/screenings", _body(), content_type="application/json", HTTP_AUTHORIZATION="Bearer nope").status_code == 401


def test_field_errors_and_unknown_fields(client: Client, bearer: dict[str, str]) -> None:
    bad_phone = _body(patient={**BODY["patient"], "phone": "06 12"})
    response = client.post("/api/v1/screenings", bad_phone, content_type="application/json", **bearer)
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "patient.phone"
    assert client.post("/api/v1/screenings", _body(colour="red"), content_type="application/json", **bearer).status_code == 422
    future = _body(sampled_at=(timezone.now() + timedelta(days=1)).isoformat())
    response = client.post("/api/v1/screenings", future, content_type="application/json", **bearer)
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "sampled_at"
    assert not Screening.objects.exists()


def test_another_pharmacys_screening_is_404(client: Client, bearer: dict[str, str], screening: Any, stranger: Any) -> None:
    # `screening` belongs to the fixture pharmacy; make it another pharmacy's by moving the client.
    other = ApiClient.objects.get()
    ApiClient.objects.filter(pk=other.pk).update(pharmacy=stranger.pharmacy)
    assert client.get(f"/api/v1/screenings/{screening.pk}", **bearer).status_code == 404


def test_openapi_document(client: Client, db: Any) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/token", "/api/v1/screenings", "/api/v1/screenings/{screening_id}"} <= set(paths)
    assert client.get("/api/v1/docs").status_code == 200


def test_reading_a_screening_through_the_api_is_audited(client: Client, bearer: dict[str, str], owner: Any, screening: Any) -> None:
    """Issue 12: GET /screenings/{id} wrote no audit event."""
    response = client.get(f"/api/v1/screenings/{screening.pk}", **bearer)
    assert response.status_code == 200
    [event] = AuditEvent.objects.filter(action="screening.api_read")
    assert event.object_ids == [str(screening.pk), str(screening.patient_id)] and event.channel == "api"
