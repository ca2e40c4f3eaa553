"""Connected software (web UI): a pharmacy admin registers API clients, rotates and revokes keys, sets the webhook."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from relais.accounts.models import Role, User
from relais.api.models import AccessToken, ApiClient, ApiClientKey
from relais.api.services import TokenError, apiclient_create, client_for_token, token_issue
from relais.audit.models import AuditEvent
from relais.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.factories import AUDIENCE, _assertion, _keypair, make_user

LIST = "/settings/api/"


def _pem_private(private: Any) -> str:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _public_pem(key: Any) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _token(api_client: ApiClient, private: Any) -> str:
    cid = str(api_client.pk)
    return token_issue(client_id=cid, assertion=_assertion(private, cid), audience=AUDIENCE).access_token


def _audits(user: User) -> int:
    return AuditEvent.objects.filter(actor_id=user.pk).count()


@pytest.fixture
def as_user(as_user: Any) -> Any:
    """The shared logged-in client, reading pages in English (the default language is French)."""

    def english(user: User) -> Any:
        web = as_user(user)
        web.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        return web

    return english


@pytest.fixture
def registered_web(admin: User, pharmacy: Any) -> tuple[ApiClient, Any]:
    private, public = _keypair()
    return apiclient_create(actor=admin, pharmacy=pharmacy, name="LGO web", public_key_pem=public), private


def test_admin_registers_an_ec_then_an_rsa_client(as_user: Any, admin: User) -> None:
    web = as_user(admin)
    page = web.get(LIST)
    assert page.status_code == 200 and b"Register software" in page.content
    assert b'href="/settings/api/"' in page.content  # the nav link
    for kind, algorithm in (("ec", "ES256"), ("rsa", "RS256")):
        before = _audits(admin)
        response = web.post(LIST, {"name": f"LGO {kind}", "public_key": _keypair(kind)[1]})
        assert response.status_code == 302, response.content
        api_client = ApiClient.objects.get(name=f"LGO {kind}")
        assert response["Location"] == f"/settings/api/{api_client.pk}/"
        assert _audits(admin) == before + 1
        detail = web.get(response["Location"]).content.decode()
        assert f'data-testid="client-id">{api_client.pk}<' in detail
        assert f'value="{api_client.pk}"' in detail  # a read-only field, easy to select and copy
        assert f'data-testid="token-url">{AUDIENCE}<' in detail  # the audience the token endpoint checks
        assert algorithm in detail and api_client.keys.get().kid in detail
        assert "The software is registered" in detail
    listing = web.get(LIST).content.decode()
    assert "LGO ec" in listing and "LGO rsa" in listing and listing.count('<span class="status">active</span>') == 2
    assert ApiClient.objects.filter(pharmacy=admin.pharmacy, created_by=admin).count() == 2


def test_a_public_key_file_can_be_uploaded(as_user: Any, admin: User) -> None:
    upload = SimpleUploadedFile("public.pem", _keypair("rsa")[1].encode(), "application/x-pem-file")
    response = as_user(admin).post(LIST, {"name": "LGO file", "public_key_file": upload})
    assert response.status_code == 302
    assert ApiClient.objects.get(name="LGO file").keys.get().algorithm == "RS256"


def _bad_keys() -> dict[str, tuple[str, str]]:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point of the test)
    return {
        "private EC key": (_pem_private(ec.generate_private_key(ec.SECP256R1())), "PRIVATE key"),
        "private RSA key": (_pem_private(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "PRIVATE key"),
        "RSA 1024": (_public_pem(weak.public_key()), "at least 2048 bits"),
        "EC P-384": (_public_pem(ec.generate_private_key(ec.SECP384R1()).public_key()), "P-256"),
        "garbage": ("hello, this is not a key", "not a PEM public key"),
        "empty": ("", "Paste the public key"),
    }


@pytest.mark.parametrize("case", list(_bad_keys()))
def test_bad_keys_are_refused_on_the_field_and_nothing_is_created(as_user: Any, admin: User, case: str) -> None:
    pem, message = _bad_keys()[case]
    users = User.objects.count()
    response = as_user(admin).post(LIST, {"name": "LGO", "public_key": pem})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="id_public_key_error"' in page and message in page
    assert not ApiClient.objects.exists() and User.objects.count() == users
    if "PRIVATE" in pem:
        assert "PRIVATE KEY-----" not in page and pem.splitlines()[1] not in page  # never shown back


def test_a_private_key_file_is_refused(as_user: Any, admin: User) -> None:
    upload = SimpleUploadedFile("key.pem", _pem_private(ec.generate_private_key(ec.SECP256R1())).encode())
    response = as_user(admin).post(LIST, {"name": "LGO", "public_key_file": upload})
    assert response.status_code == 200 and b'id="id_public_key_file_error"' in response.content
    assert b"PRIVATE key" in response.content and not ApiClient.objects.exists()


def test_rotation_add_a_key_then_revoke_the_first(as_user: Any, admin: User, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, old_private = registered_web
    web = as_user(admin)
    new_private, new_public = _keypair("rsa")
    before = _audits(admin)
    response = web.post(f"{LIST}{api_client.pk}/keys/", {"public_key": new_public})
    assert response.status_code == 302 and _audits(admin) == before + 1
    assert api_client.keys.filter(revoked_at__isnull=True).count() == 2
    third = web.post(f"{LIST}{api_client.pk}/keys/", {"public_key": _keypair()[1]})
    assert third.status_code == 200 and b"Two keys are already active" in third.content
    assert api_client.keys.count() == 2
    old_token = _token(api_client, old_private)  # both keys work during the rotation
    _token(api_client, new_private)
    old_key = api_client.keys.get(algorithm="ES256")
    before = _audits(admin)
    response = web.post(f"{LIST}{api_client.pk}/keys/{old_key.pk}/revoke/")
    assert response.status_code == 302 and _audits(admin) == before + 1
    old_key.refresh_from_db()
    assert old_key.revoked_at is not None
    with pytest.raises(TokenError):  # no active key of its algorithm is left
        _token(api_client, old_private)
    assert _token(api_client, new_private)
    assert client_for_token(old_token) is None  # a token got with the revoked key stops at once
    page = web.get(f"{LIST}{api_client.pk}/").content.decode()
    assert "revoked" in page and "Add a key" in page


def test_revoking_a_key_ends_its_tokens(as_user: Any, admin: User, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, private = registered_web
    token = _token(api_client, private)
    key = api_client.keys.get()
    before = _audits(admin)
    response = as_user(admin).post(f"{LIST}{api_client.pk}/keys/{key.pk}/revoke/")
    assert response.status_code == 302 and _audits(admin) == before + 1
    assert client_for_token(token) is None and not AccessToken.objects.filter(client=api_client).exists()


def test_revoke_the_client(as_user: Any, admin: User, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, private = registered_web
    token = _token(api_client, private)
    assert client_for_token(token) == api_client
    web = as_user(admin)
    before = _audits(admin)
    response = web.post(f"{LIST}{api_client.pk}/revoke/")
    assert response.status_code == 302 and _audits(admin) == before + 1
    assert AuditEvent.objects.filter(action="apiclient.revoke", actor_id=admin.pk).exists()
    api_client.refresh_from_db()
    assert api_client.revoked_at is not None
    assert client_for_token(token) is None  # an issued bearer token stops at once
    with pytest.raises(TokenError, match="revoked"):
        _token(api_client, private)
    page = web.get(f"{LIST}{api_client.pk}/").content.decode()
    assert "Revoked on" in page and 'id="add-key"' not in page and 'id="webhook"' not in page
    assert "revoked" in web.get(LIST).content.decode()
    refused = web.post(f"{LIST}{api_client.pk}/keys/", {"public_key": _keypair()[1]})
    assert refused.status_code == 200 and b"This software is revoked" in refused.content and api_client.keys.count() == 1
    web.post(f"{LIST}{api_client.pk}/webhook/", {"url": "http://127.0.0.1:9/hook"})
    assert not Webhook.objects.exists()


def test_webhook_set_replace_refuse_disable(as_user: Any, admin: User, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, _private = registered_web
    web = as_user(admin)
    before = _audits(admin)
    response = web.post(f"{LIST}{api_client.pk}/webhook/", {"url": "http://127.0.0.1:9/hook"})
    assert response.status_code == 302 and _audits(admin) == before + 1
    assert Webhook.objects.get(disabled_at__isnull=True).url == "http://127.0.0.1:9/hook"
    assert "http://127.0.0.1:9/hook" in web.get(LIST).content.decode()
    refused = web.post(f"{LIST}{api_client.pk}/webhook/", {"url": "http://example.com/"})
    assert refused.status_code == 200 and b'id="id_url_error"' in refused.content and b"Use https" in refused.content
    assert Webhook.objects.get(disabled_at__isnull=True).url == "http://127.0.0.1:9/hook"
    assert web.post(f"{LIST}{api_client.pk}/webhook/", {"url": "http://localhost:9/other"}).status_code == 302
    assert list(Webhook.objects.filter(disabled_at__isnull=True).values_list("url", flat=True)) == ["http://localhost:9/other"]
    before = _audits(admin)
    assert web.post(f"{LIST}{api_client.pk}/webhook/disable/").status_code == 302
    assert _audits(admin) == before + 1 and not Webhook.objects.filter(disabled_at__isnull=True).exists()
    assert b"No webhook" in web.get(f"{LIST}{api_client.pk}/").content


def test_delivery_log_and_counts(as_user: Any, admin: User, registered_web: tuple[ApiClient, Any], screening: Any) -> None:
    api_client, _private = registered_web
    hook = Webhook.objects.create(client=api_client, url="http://127.0.0.1:9/hook", created_by=admin)
    now = timezone.now()
    rows = [
        (DeliveryStatus.DELIVERED, 1, "", now),
        (DeliveryStatus.DELIVERED, 2, "HTTP 503", now),
        (DeliveryStatus.PENDING, 3, "connection refused", None),
        (DeliveryStatus.FAILED, 9, "gave up after 72 hours", None),
    ]
    for status, attempts, error, delivered in rows:
        WebhookDelivery.objects.create(
            webhook=hook,
            event="screening.acknowledged",
            screening=screening,
            payload={"screening_id": str(screening.pk)},
            status=status,
            attempts=attempts,
            last_error=error,
            next_attempt_at=now + timedelta(minutes=5),
            delivered_at=delivered,
        )
    page = as_user(admin).get(f"{LIST}{api_client.pk}/").content.decode()
    assert page.count("screening.acknowledged") == 4 and str(screening.pk) in page
    assert "connection refused" in page and "gave up after 72 hours" in page
    assert 'data-testid="count-delivered">2<' in page and 'data-testid="count-pending">1<' in page
    assert 'data-testid="count-failed">1<' in page
    assert "DURAND" not in page and "Camille" not in page  # ids and statuses only


def _urls(api_client: ApiClient) -> tuple[list[str], list[str]]:
    key = api_client.keys.get()
    base = f"{LIST}{api_client.pk}/"
    return [base], [f"{base}keys/", f"{base}keys/{key.pk}/revoke/", f"{base}revoke/", f"{base}webhook/", f"{base}webhook/disable/"]


def test_get_never_changes_anything(as_user: Any, admin: User, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, _private = registered_web
    web = as_user(admin)
    _gets, posts = _urls(api_client)
    for url in posts:
        assert web.get(url).status_code == 405, url
    api_client.refresh_from_db()
    assert api_client.revoked_at is None and not ApiClientKey.objects.filter(revoked_at__isnull=False).exists()


@pytest.mark.parametrize("who", ["colleague", "operator", "auditor"])
def test_only_the_pharmacy_admin_gets_in(as_user: Any, request: Any, who: str, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, _private = registered_web
    web = as_user(request.getfixturevalue(who))
    gets, posts = _urls(api_client)
    for url in [LIST, *gets]:
        assert web.get(url).status_code == 403, url
    for url in [LIST, *posts]:
        assert web.post(url, {"name": "x", "public_key": _keypair()[1], "url": "http://127.0.0.1:9/h"}).status_code == 403, url
    assert ApiClient.objects.count() == 1 and ApiClientKey.objects.count() == 1 and not Webhook.objects.exists()
    assert b"Connected software" not in web.get("/").content


def test_another_pharmacys_admin_gets_404(as_user: Any, other_pharmacy: Any, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, private = registered_web
    token = _token(api_client, private)
    other_admin = make_user("other-admin@test.example", Role.PHARMACY_ADMIN, other_pharmacy)
    web = as_user(other_admin)
    listing = web.get(LIST)
    assert listing.status_code == 200 and str(api_client.pk) not in listing.content.decode()
    gets, posts = _urls(api_client)
    for url in gets:
        assert web.get(url).status_code == 404, url
    before = AuditEvent.objects.count()
    for url in posts:
        assert web.post(url, {"public_key": _keypair()[1], "url": "http://127.0.0.1:9/h"}).status_code == 404, url
    assert AuditEvent.objects.count() == before
    api_client.refresh_from_db()
    assert api_client.revoked_at is None and api_client.keys.filter(revoked_at__isnull=True).count() == 1
    assert not Webhook.objects.exists() and client_for_token(token) == api_client


def test_a_key_of_another_client_answers_404(as_user: Any, admin: User, pharmacy: Any, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, _private = registered_web
    other = apiclient_create(actor=admin, pharmacy=pharmacy, name="other", public_key_pem=_keypair()[1])
    response = as_user(admin).post(f"{LIST}{api_client.pk}/keys/{other.keys.get().pk}/revoke/")
    assert response.status_code == 404 and not ApiClientKey.objects.filter(revoked_at__isnull=False).exists()


def test_anonymous_is_sent_to_login(client: Any, registered_web: tuple[ApiClient, Any]) -> None:
    api_client, _private = registered_web
    response = client.get(f"{LIST}{api_client.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert client.post(f"{LIST}{api_client.pk}/revoke/").status_code in (302, 403)
    api_client.refresh_from_db()
    assert api_client.revoked_at is None
