from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client, override_settings
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from relais.accounts.models import Invitation, Role, User
from relais.accounts.services import invitation_accept, invitation_create
from tests.factories import STRONG_PASSWORD


def _code(device: TOTPDevice, offset: int = 0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=offset):06d}"


def test_no_open_sign_up(client: Client, db: Any) -> None:
    for path in ("/signup/", "/register/", "/accounts/signup/"):
        assert client.get(path).status_code in (302, 404)
    assert (
        client.post("/invite/not-a-token/", {"full_name": "x", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}).status_code
        == 404
    )
    assert not User.objects.exists()


def test_invitation_is_single_use_and_stores_only_a_hash(admin: Any) -> None:
    issued = invitation_create(actor=admin, email="New@Example.org", role=Role.PHARMACIST, pharmacy=admin.pharmacy)
    assert issued.token not in issued.invitation.token_hash
    user = invitation_accept(token=issued.token, full_name="New Person", password=STRONG_PASSWORD)
    assert user.email == "new@example.org" and user.pharmacy_id == admin.pharmacy_id and user.role == Role.PHARMACIST
    assert user.password.startswith("argon2$argon2id$")
    with pytest.raises(ValidationError):
        invitation_accept(token=issued.token, full_name="Again", password=STRONG_PASSWORD)


def test_invitation_expires(admin: Any) -> None:
    issued = invitation_create(actor=admin, email="late@example.org", role=Role.PHARMACIST, pharmacy=admin.pharmacy)
    Invitation.objects.filter(pk=issued.invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="expired"):
        invitation_accept(token=issued.token, full_name="Late", password=STRONG_PASSWORD)
    assert not User.objects.filter(email="late@example.org").exists()


def test_who_may_invite_whom(admin: Any, owner: Any, operator: Any, other_pharmacy: Any) -> None:
    with pytest.raises(PermissionDenied):
        invitation_create(actor=owner, email="a@example.org", role=Role.PHARMACIST, pharmacy=owner.pharmacy)
    with pytest.raises(PermissionDenied):
        invitation_create(actor=admin, email="a@example.org", role=Role.PHARMACIST, pharmacy=other_pharmacy)
    with pytest.raises(PermissionDenied):
        invitation_create(actor=admin, email="a@example.org", role=Role.PLATFORM_OPERATOR, pharmacy=None)
    invitation_create(actor=operator, email="boss@example.org", role=Role.PHARMACY_ADMIN, pharmacy=other_pharmacy)


@pytest.mark.parametrize(
    "password",
    ["password", "P@ssw0rd2024!", "Azerty123456", "Motdepasse2025", "Qwertyuiop99", "aaaaaaaaaaaaaaa1", "12345678901234", "short1!"],
)
def test_weak_and_disguised_common_passwords_are_refused(password: str, db: Any) -> None:
    with pytest.raises(ValidationError):
        password_validation.validate_password(password, User(email="x@example.org"))


def test_a_passphrase_is_accepted(db: Any) -> None:
    password_validation.validate_password("violet-tramway-cactus-41", User(email="x@example.org"))


def test_weak_password_error_is_shown_on_the_form(client: Client, admin: Any) -> None:
    issued = invitation_create(actor=admin, email="weak@example.org", role=Role.PHARMACIST, pharmacy=admin.pharmacy)
    response = client.post(
        f"/invite/{issued.token}/",
        {"full_name": "W", "password1": "Password2024!", "password2": "Password2024!"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert b'id="id_password1_error"' in response.content
    assert not User.objects.filter(email="weak@example.org").exists()


def _login(client: Client, email: str, password: str = STRONG_PASSWORD) -> Any:
    return client.post("/login/", {"username": email, "password": password}, HTTP_ACCEPT_LANGUAGE="en")


def test_first_login_enrols_totp_then_every_login_needs_it(client: Client, owner: Any) -> None:
    response = _login(client, owner.email)
    assert response.status_code == 302
    # Logged in by password only: every staff page sends to the second factor.
    assert client.get("/patients/").url == "/mfa/"
    enrol = client.get("/mfa/")
    assert b"totp-secret" in enrol.content and b"<svg" in enrol.content
    device = TOTPDevice.objects.get(user=owner, confirmed=False)
    assert client.post("/mfa/", {"token": "000000" if _code(device) != "000000" else "111111"}).status_code == 200
    time.sleep(1.1)  # a wrong code throttles the next try for a second
    assert client.post("/mfa/", {"token": _code(device)}).status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/").status_code == 200

    second = Client()
    _login(second, owner.email)
    page = second.get("/mfa/")
    assert b"totp-secret" not in page.content  # no second enrolment, no secret shown again
    assert second.get("/").url == "/mfa/"
    device.refresh_from_db()
    assert second.post("/mfa/", {"token": _code(device, offset=1)}).status_code == 302
    assert second.get("/").status_code == 200


def test_lockout_after_repeated_failures(client: Client, owner: Any) -> None:
    for _ in range(5):
        _login(client, owner.email, "wrong-password-123")
    response = _login(client, owner.email)  # right password, but locked
    assert response.status_code == 429
    assert client.get("/").status_code == 302


def test_wrong_password_gives_a_clear_error(client: Client, owner: Any) -> None:
    response = _login(client, owner.email, "wrong-password-123")
    assert response.status_code == 200
    assert b"correct email and password" in response.content or b"enter a correct" in response.content.lower()


def test_deactivated_user_cannot_log_in(client: Client, owner: Any) -> None:
    owner.is_active = False
    owner.save()
    assert _login(client, owner.email).status_code == 200
    assert "_auth_user_id" not in client.session


@override_settings(RELAIS_SESSION_IDLE_SECONDS=60)
def test_idle_session_expires(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    assert client.get("/").status_code == 200
    session = client.session
    session["relais_seen_at"] = int(time.time()) - 120
    session.save()
    response = client.get("/")
    assert response.status_code == 302 and "expired" in response.url
    assert client.get("/").url.startswith("/login/")


@override_settings(RELAIS_SESSION_ABSOLUTE_SECONDS=3600)
def test_session_has_an_absolute_lifetime(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    client.get("/")
    session = client.session
    session["relais_auth_at"] = int(time.time()) - 3601
    session["relais_seen_at"] = int(time.time())
    session.save()
    assert "expired" in client.get("/").url


def test_logout_is_post_only(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_operator_onboards_a_pharmacy_with_field_errors(as_user: Any, operator: Any) -> None:
    client = as_user(operator)
    bad = client.post(
        "/operator/pharmacies/",
        {"name": "P", "finess": "750000011", "address_line": "a", "postcode": "75001", "city": "Paris", "admin_email": "a@example.org"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert b'id="id_finess_error"' in bad.content
    good = client.post(
        "/operator/pharmacies/",
        {"name": "P", "finess": "690001235", "address_line": "a", "postcode": "69001", "city": "Lyon", "admin_email": "a@example.org"},
    )
    assert b"invite-link" in good.content
    assert Invitation.objects.filter(email="a@example.org", role=Role.PHARMACY_ADMIN).exists()


def test_admin_invites_through_the_team_page(as_user: Any, admin: Any) -> None:
    response = as_user(admin).post("/team/", {"email": "new@example.org", "role": "pharmacist"})
    assert b"/invite/" in response.content


def test_healthz(client: Client, db: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_deactivation_ends_open_sessions(as_user: Any, admin: Any, colleague: Any) -> None:
    colleague_client = as_user(colleague)
    assert colleague_client.get("/").status_code == 200
    as_user(admin).post(f"/team/{colleague.pk}/deactivate/")
    assert colleague_client.get("/").url == "/login/"
