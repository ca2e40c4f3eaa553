from __future__ import annotations

from typing import Any

from django.test import Client


def test_pages_carry_security_headers(client: Client, db: Any) -> None:
    response = client.get("/login/")
    csp = response["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"]
    cookie = response.cookies["csrftoken"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"


def test_session_cookie_is_httponly_and_samesite(as_user: Any, owner: Any) -> None:
    client = Client()
    client.post("/login/", {"username": owner.email, "password": "violet-tramway-cactus-41"})
    cookie = client.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_anonymous_users_reach_only_public_pages(client: Client, db: Any) -> None:
    for path in ("/", "/patients/", "/patients/new/", "/team/", "/audit/", "/operator/pharmacies/"):
        response = client.get(path)
        assert response.status_code == 302 and response.url.startswith("/login/"), path


def test_error_pages_hold_no_personal_data(as_user: Any, owner: Any, patient: Any) -> None:
    response = as_user(owner).get("/patients/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert b"DURAND" not in response.content
