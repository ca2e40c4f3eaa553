"""The team page lists the pharmacy's pending and expired invitations; Revoke and Resend are admin-only, scoped to the
pharmacy, POST with CSRF, and audited in the same transaction."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from relais.accounts import services
from relais.accounts.models import Invitation, Role, User
from relais.accounts.services import invitation_accept, invitation_create, invitation_resend, invitation_revoke
from relais.audit.models import AuditEvent
from sandbox.messaging import SmtpServer
from tests.accounts.test_invitations_email import accept, emailed_path, english, mail_server  # noqa: F401
from tests.factories import STRONG_PASSWORD, make_user


def invite(actor: User, email: str) -> services.IssuedInvitation:
    return invitation_create(actor=actor, email=email, role=Role.PHARMACIST, pharmacy=actor.pharmacy)


def listed(client: Client) -> str:
    """The invitations section of the team page."""
    page = client.get("/team/").content.decode()
    return page.split('id="invitations-heading"')[1].split("Invite a colleague")[0]


def test_list_shows_only_this_pharmacys_pending_and_expired_invitations(as_user: Any, admin: Any, other_pharmacy: Any) -> None:
    other_admin = make_user("other-admin@test.example", Role.PHARMACY_ADMIN, other_pharmacy)
    invite(admin, "pending@example.org")
    expired = invite(admin, "expired@example.org")
    Invitation.objects.filter(pk=expired.invitation.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    used = invite(admin, "used@example.org")
    invitation_accept(token=used.token, full_name="Used", password=STRONG_PASSWORD)
    invitation_revoke(actor=admin, invitation_id=invite(admin, "revoked@example.org").invitation.pk)
    invite(other_admin, "elsewhere@example.org")

    section = listed(english(as_user(admin)))
    assert "pending@example.org" in section and "expired@example.org" in section
    assert "used@example.org" not in section and "revoked@example.org" not in section and "elsewhere@example.org" not in section
    assert section.count('data-testid="invitation"') == 2
    expired_row = section.split(f'data-invitation="{expired.invitation.pk}"')[1].split("</tr>")[0]
    assert "expired" in expired_row and f"/team/invitations/{expired.invitation.pk}/resend/" in expired_row
    assert "Pharmacist" in section  # labelled role, not its code


def test_revoke_stops_the_link_at_once(as_user: Any, admin: Any) -> None:
    issued = invite(admin, "revoke@example.org")
    client = english(as_user(admin))
    response = client.post(f"/team/invitations/{issued.invitation.pk}/revoke/", follow=True)
    assert b"The invitation is revoked: its link no longer works." in response.content
    assert "revoke@example.org" not in listed(client)
    page = Client(HTTP_ACCEPT_LANGUAGE="en").get(f"/invite/{issued.token}/")
    assert page.status_code == 404 and b'data-testid="invitation-revoked"' in page.content and b"withdrawn" in page.content
    assert accept(f"/invite/{issued.token}/").status_code == 404
    assert not User.objects.filter(email="revoke@example.org").exists()
    event = AuditEvent.objects.get(action="staff.invite_revoke")
    assert event.actor_id == admin.pk and event.pharmacy_id == admin.pharmacy_id and event.object_ids == [str(issued.invitation.pk)]
    again = client.post(f"/team/invitations/{issued.invitation.pk}/revoke/", follow=True)
    assert b"already revoked" in again.content
    with pytest.raises(ValidationError):
        invitation_resend(actor=admin, invitation_id=issued.invitation.pk)


def test_resend_gives_a_new_link_and_expiry_and_kills_the_old_one(as_user: Any, admin: Any, mail_server: SmtpServer) -> None:  # noqa: F811
    issued = invite(admin, "resend@example.org")
    Invitation.objects.filter(pk=issued.invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))  # expired
    expired_page = Client(HTTP_ACCEPT_LANGUAGE="en").get(f"/invite/{issued.token}/")
    assert b'data-testid="invitation-expired"' in expired_page.content

    page = english(as_user(admin)).post(f"/team/invitations/{issued.invitation.pk}/resend/").content.decode()
    assert "The invitation was emailed to resend@example.org." in page and 'data-testid="invite-link"' in page
    invitation = Invitation.objects.get(pk=issued.invitation.pk)
    assert invitation.expires_at > timezone.now() + timedelta(hours=71) and invitation.is_usable
    assert len(mail_server.store.messages) == 1
    new_path = emailed_path(mail_server)
    assert new_path in page  # the link shown once is the emailed one's path
    assert Client().get(f"/invite/{issued.token}/").status_code == 404
    assert accept(f"/invite/{issued.token}/").status_code == 404
    assert accept(new_path).status_code == 302
    assert User.objects.get(email="resend@example.org").pharmacy_id == admin.pharmacy_id
    event = AuditEvent.objects.get(action="staff.invite_resend")
    assert event.actor_id == admin.pk and event.object_ids == [str(issued.invitation.pk)]
    with pytest.raises(ValidationError):  # accepted: nothing left to resend
        invitation_resend(actor=admin, invitation_id=issued.invitation.pk)


@pytest.mark.parametrize("action", ["revoke", "resend"])
def test_access_rules(action: str, as_user: Any, admin: Any, owner: Any, stranger: Any, other_pharmacy: Any, client: Client) -> None:
    issued = invite(admin, "target@example.org")
    url = f"/team/invitations/{issued.invitation.pk}/{action}/"
    before = Invitation.objects.get(pk=issued.invitation.pk)

    assert as_user(owner).post(url).status_code == 403  # a pharmacist of the same pharmacy
    assert as_user(stranger).post(url).status_code == 403
    other_admin = make_user("other-admin@test.example", Role.PHARMACY_ADMIN, other_pharmacy)
    assert as_user(other_admin).post(url).status_code == 404  # another pharmacy's invitation does not exist for them
    assert as_user(admin).post(f"/team/invitations/{uuid.uuid4()}/{action}/").status_code == 404  # one that never existed
    assert client.post(url).status_code == 302  # anonymous: to the login page
    assert as_user(admin).get(url).status_code == 405  # never on GET
    csrf_client = as_user(admin)
    csrf_client.handler.enforce_csrf_checks = True
    assert csrf_client.post(url).status_code == 403
    after = Invitation.objects.get(pk=issued.invitation.pk)
    assert (after.token_hash, after.revoked_at, after.expires_at) == (before.token_hash, before.revoked_at, before.expires_at)
    assert not AuditEvent.objects.filter(action__startswith="staff.invite_").exists()
    assert "target@example.org" not in listed(as_user(other_admin))
    assert as_user(owner).get("/team/").status_code == 403


@pytest.mark.parametrize("action", [invitation_revoke, invitation_resend])
def test_nothing_changes_when_the_audit_event_cannot_be_written(action: Any, admin: Any, monkeypatch: Any) -> None:
    issued = invite(admin, "atomic@example.org")

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(services, "audit_record", broken)
    with pytest.raises(RuntimeError):
        action(actor=admin, invitation_id=issued.invitation.pk)
    after = Invitation.objects.get(pk=issued.invitation.pk)
    assert after.revoked_at is None and after.token_hash == issued.invitation.token_hash
    monkeypatch.undo()
    assert invitation_accept(token=issued.token, full_name="Still", password=STRONG_PASSWORD).email == "atomic@example.org"
