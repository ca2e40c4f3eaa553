"""Staff invitations are emailed (French and English, text and HTML) through a real loopback SMTP server; a failed send
keeps the invitation, its link shown once and a Resend button."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from relais.accounts.models import Invitation, Role, User
from relais.accounts.services import invitation_create, invitation_email_send
from sandbox.messaging import SmtpServer
from tests.factories import STRONG_PASSWORD

LINK = re.compile(r"http://testserver(/invite/[^/\s]+/)")


@pytest.fixture
def mail_server(tmp_path: Path, settings: Any) -> Iterator[SmtpServer]:
    """The sandbox's SMTP server (aiosmtpd) on a free port, keeping .eml files so the HTML part can be read."""
    server = SmtpServer(port=0, folder=tmp_path / "mail").start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.RELAIS_PUBLIC_URL = "http://testserver"
    yield server
    server.stop()


def emailed_path(server: SmtpServer, index: int = -1) -> str:
    match = LINK.search(server.store.messages[index]["text"])
    assert match, server.store.messages[index]["text"]
    return match.group(1)


def english(client: Client) -> Client:
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def accept(path: str, name: str = "New Colleague") -> Any:
    return Client().post(path, {"full_name": name, "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD})


def test_invitation_is_emailed_in_both_languages_and_its_link_works(as_user: Any, admin: Any, mail_server: SmtpServer) -> None:
    page = english(as_user(admin)).post("/team/", {"email": "New@Example.org", "role": "pharmacist"}).content.decode()
    assert "The invitation was emailed to new@example.org." in page
    assert 'data-testid="invite-link"' in page  # still shown once, in case the email does not arrive

    [mail] = mail_server.store.messages
    assert mail["to"] == ["new@example.org"]
    assert "Invitation à rejoindre Pharmacie du Test sur Relais" in mail["subject"]
    assert "Invitation to join Pharmacie du Test on Relais" in mail["subject"]
    text = mail["text"]
    assert "Ouvrez ce lien pour créer votre compte" in text and "Open this link to create your account" in text
    assert "cesse de fonctionner le" in text and "(heure de Paris)" in text and "stops working on" in text
    invitation = Invitation.objects.get(email="new@example.org")
    assert invitation.emailed_at is not None and invitation.email_error == ""
    [eml] = list(Path(mail_server.store.folder or "").glob("*.eml"))
    parsed = message_from_bytes(eml.read_bytes(), policy=default_policy)
    html = parsed.get_body(preferencelist=("html",))
    assert html is not None
    path = emailed_path(mail_server)
    assert f'href="http://testserver{path}"' in html.get_content() and 'lang="fr"' in html.get_content()

    team = english(as_user(admin)).get("/team/").content.decode()
    assert 'data-testid="invitation"' in team and "new@example.org" in team

    response = accept(path)
    assert response.status_code == 302 and response.url == "/login/"
    user = User.objects.get(email="new@example.org")
    assert user.role == Role.PHARMACIST and user.pharmacy_id == admin.pharmacy_id
    assert "new@example.org" not in english(as_user(admin)).get("/team/").content.decode().split("invitations-heading")[1]


def test_refused_address_keeps_the_invitation_and_says_why(as_user: Any, admin: Any, mail_server: SmtpServer) -> None:
    # The sandbox's SMTP server refuses .invalid recipients with 550, as a real one does for an unknown address.
    page = english(as_user(admin)).post("/team/", {"email": "typo@example.invalid", "role": "pharmacist"}).content.decode()
    assert "The invitation email could not be sent." in page and "refused this address (550)" in page
    assert 'data-testid="invite-link"' in page
    invitation = Invitation.objects.get(email="typo@example.invalid")
    assert invitation.is_usable and invitation.emailed_at is None and invitation.email_error == "refused:550"
    assert "example.invalid" not in invitation.email_error
    team = english(as_user(admin)).get("/team/").content.decode()
    assert "typo@example.invalid" in team and "not emailed" in team and "refused this address (550)" in team
    shown = re.search(r'data-testid="invite-link">http://testserver(/invite/[^/]+/)', page)
    assert shown and accept(shown.group(1)).status_code == 302  # the fallback link works


def test_mail_server_down_loses_nothing_and_resend_delivers(as_user: Any, admin: Any, mail_server: SmtpServer, settings: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connections refused, as with the server down
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    client = english(as_user(admin))
    page = client.post("/team/", {"email": "later@example.org", "role": "pharmacy_admin"}).content.decode()
    assert "The mail server could not be reached" in page
    invitation = Invitation.objects.get(email="later@example.org")
    assert invitation.is_usable and invitation.email_error.startswith("unreachable:")
    first = re.search(r'data-testid="invite-link">http://testserver(/invite/[^/]+/)', page)
    assert first

    settings.EMAIL_PORT = mail_server.port  # the mail server is back
    page = client.post(f"/team/invitations/{invitation.pk}/resend/").content.decode()
    assert "The invitation was emailed to later@example.org." in page
    invitation.refresh_from_db()
    assert invitation.emailed_at is not None and invitation.email_error == ""
    path = emailed_path(mail_server)
    assert Client().get(first.group(1)).status_code == 404  # the resend replaced the token
    assert accept(path).status_code == 302
    assert User.objects.get(email="later@example.org").role == Role.PHARMACY_ADMIN


def test_a_stale_token_does_not_overwrite_a_newer_send(admin: Any, mail_server: SmtpServer) -> None:
    issued = invitation_create(actor=admin, email="race@example.org", role=Role.PHARMACIST, pharmacy=admin.pharmacy)
    Invitation.objects.filter(pk=issued.invitation.pk).update(token_hash="0" * 64)  # a resend got in between
    assert invitation_email_send(invitation=issued.invitation, token=issued.token)
    assert Invitation.objects.get(pk=issued.invitation.pk).emailed_at is None


def test_operator_invitation_of_a_new_pharmacy_admin_is_emailed(as_user: Any, operator: Any, mail_server: SmtpServer) -> None:
    page = english(as_user(operator)).post(
        "/operator/pharmacies/",
        {
            "name": "Pharmacie Neuve",
            "finess": "690001235",
            "address_line": "a",
            "postcode": "69001",
            "city": "Lyon",
            "admin_email": "boss@example.org",
        },
    )
    assert b"invite-link" in page.content
    [mail] = mail_server.store.messages
    assert mail["to"] == ["boss@example.org"] and "Pharmacie Neuve" in mail["subject"]
    assert accept(emailed_path(mail_server), "Boss").status_code == 302
