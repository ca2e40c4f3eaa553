"""Hostile input: malformed or oversized bodies, deep nesting, wrong types, unknown fields, injection strings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from relais.patients.models import Patient
from relais.screenings.models import Screening
from tests.factories import _body

JSON = "application/json"
INJECTIONS = [
    "'; DROP TABLE patients_patient; --",
    '" OR 1=1 --',
    "<script>alert(1)</script>",
    "{{7*7}}${7*7}",
    '=HYPERLINK("http://x")',
    "../../etc/passwd",
    "\u202eevil\u202c",
    "a\x00b",
    "é" * 5000,
    "%00%0d%0aSet-Cookie: x=1",
]
PATIENT_TEXT_FIELDS = ["last_name", "first_names", "nir", "address_line", "postcode", "city", "country", "phone", "email"]


def _post(client: Client, path: str, data: bytes | str, bearer: dict[str, str]) -> Any:
    return client.post(path, data, content_type=JSON, **bearer)


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"items": [1, 2,]}', b"\xff\xfe", b"[]", b"null", b'"text"'])
def test_malformed_json_is_a_clear_400_or_422(client: Client, bearer: dict[str, str], raw: bytes) -> None:
    response = _post(client, "/api/v1/screenings", raw, bearer)
    assert response.status_code in (400, 422)
    assert response.json()["error"] in ("malformed_body", "invalid_request")
    assert Screening.objects.count() == 0


def test_body_over_the_size_limit_is_413(client: Client, bearer: dict[str, str]) -> None:
    big = json.dumps({"items": [_body(patient={**_body()["patient"], "address_line": "x" * 200})] * 9000})
    assert len(big) > 2_621_440
    response = _post(client, "/api/v1/screenings/batch", big, bearer)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


@pytest.mark.parametrize("depth", [200, 100_000])
def test_deep_nesting_is_refused_without_crashing(client: Client, bearer: dict[str, str], depth: int) -> None:
    nested = "[" * depth + "]" * depth
    response = _post(client, "/api/v1/screenings/batch", '{"items": [' + nested + "]}", bearer)
    assert response.status_code in (200, 400, 422)
    if response.status_code == 200:
        assert response.json()["rejected"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device_id", 1232),
        ("sampled_at", 0),
        ("sampled_at", "yesterday"),
        ("results", ["260415000"]),
        ("information_notice_given", "yes"),
        ("information_notice_given", 1),
        ("information_notice_given", False),
        ("information_notice_given", None),
        ("consent_share_identity", "yes"),
        ("consent_share_identity", 1),
        ("patient", "DURAND"),
        ("specimen_type", None),
    ],
)
def test_wrong_types_name_the_field(client: Client, bearer: dict[str, str], field: str, value: Any) -> None:
    response = _post(client, "/api/v1/screenings", json.dumps(_body(**{field: value})), bearer)
    assert response.status_code == 422
    assert any(f["field"].startswith(field) for f in response.json()["fields"]), response.json()


@pytest.mark.parametrize("where", ["top", "patient"])
def test_unknown_fields_are_refused_not_ignored(client: Client, bearer: dict[str, str], where: str) -> None:
    body = _body()
    if where == "top":
        body["is_admin"] = True
    else:
        body["patient"] = {**body["patient"], "pharmacy_id": "someone-else"}
    response = _post(client, "/api/v1/screenings", json.dumps(body), bearer)
    assert response.status_code == 422
    assert any(f["field"].endswith(("is_admin", "pharmacy_id")) for f in response.json()["fields"])
    assert Screening.objects.count() == 0


@pytest.mark.parametrize("field", PATIENT_TEXT_FIELDS)
def test_injection_strings_in_patient_fields(client: Client, bearer: dict[str, str], field: str) -> None:
    for index, value in enumerate(INJECTIONS):
        patient = {**_body()["patient"], "last_name": f"INJECTION{chr(65 + index)}", field: value}
        response = _post(client, "/api/v1/screenings", json.dumps(_body(patient=patient)), bearer)
        assert response.status_code in (201, 422), (field, value, response.content)
        if response.status_code == 422:
            assert response.json()["fields"], response.json()
    assert Patient.objects.count() >= 0  # the table is still there
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM patients_patient")


@pytest.mark.parametrize("field", ["device_id", "specimen_type"])
def test_injection_strings_in_screening_fields(client: Client, bearer: dict[str, str], field: str) -> None:
    for value in INJECTIONS:
        response = _post(client, "/api/v1/screenings", json.dumps(_body(**{field: value[:20]})), bearer)
        assert response.status_code == 422, (field, value, response.content)
    assert Screening.objects.count() == 0


def test_injection_strings_in_reasons_and_batches(client: Client, bearer: dict[str, str]) -> None:
    created = _post(client, "/api/v1/screenings", json.dumps(_body()), bearer).json()
    for value in INJECTIONS:
        path = f"/api/v1/screenings/{created['screening_id']}/correction"
        response = _post(client, path, json.dumps({"reason": value[:500], "results": {"sars-cov-2": "bogus"}}), bearer)
        assert response.status_code == 422
    items = [_body(device_id=value[:20]) for value in INJECTIONS]
    batch = _post(client, "/api/v1/screenings/batch", json.dumps({"items": items}), bearer)
    assert batch.status_code == 200 and batch.json()["rejected"] == len(INJECTIONS)


def test_injection_in_idempotency_key_and_webhook(client: Client, bearer: dict[str, str]) -> None:
    for value in ["a b", "é", "x" * 201, "\r\nX-Evil: 1"]:
        response = client.post("/api/v1/screenings", json.dumps(_body()), content_type=JSON, HTTP_IDEMPOTENCY_KEY=value, **bearer)
        assert response.status_code in (400, 422), value
    for url in ["javascript:alert(1)", "file:///etc/passwd", "https://user:pw@example.org/", "gopher://127.0.0.1:25/"]:
        response = client.put("/api/v1/webhook", json.dumps({"url": url}), content_type=JSON, **bearer)
        assert response.status_code == 422, url


def test_unknown_api_path_answers_json_404(client: Client, bearer: dict[str, str]) -> None:
    response = client.get("/api/v1/nothing-here", **bearer)
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    response = client.get("/api/v1/screenings/not-a-uuid", **bearer)
    assert response.status_code == 422 and response.json()["fields"][0]["field"].endswith("screening_id")


@pytest.mark.django_db
def test_token_with_missing_form_fields_answers_oauth_invalid_request(client: Any) -> None:
    response = client.post("/api/v1/token", {"grant_type": "client_credentials"})
    assert response.status_code == 400
    body = response.json()
    assert (
        body["error"] == "invalid_request" and "client_id" in body["error_description"] and "client_assertion" in body["error_description"]
    )


@pytest.mark.django_db
def test_wrong_method_answers_json_405_with_allow(client: Any) -> None:
    response = client.delete("/api/v1/token")
    assert response.status_code == 405 and response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "method_not_allowed" and "POST" in response["Allow"]
