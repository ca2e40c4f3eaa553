"""Issue 16: staff accounts carry an RPPS number (11 digits, Luhn key), entered on accepting the invitation or by the
pharmacy's administrator on the team page, shown on the staff list, audited without the number."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from relais.accounts.models import Role, User
from relais.accounts.services import invitation_create, staff_rpps_set
from relais.accounts.validators import rpps_normalise
from relais.audit.models import AuditEvent
from tests.factories import STRONG_PASSWORD

VALID = "10100000008"
VALID_OTHER = "10001234565"


def test_rpps_is_eleven_digits_with_a_luhn_key() -> None:
    assert rpps_normalise(" 101 000 000 08 ") == VALID
    assert rpps_normalise("") == ""
    with pytest.raises(ValidationError, match="RPPS number: 11 digits"):
        rpps_normalise("1010000000")
    with pytest.raises(ValidationError, match="RPPS number: 11 digits"):
        rpps_normalise("1010000000A")
    with pytest.raises(ValidationError, match="RPPS number: the last digit"):
        rpps_normalise("10100000009")


def _accept(path: str, rpps: str) -> Any:
    data = {"full_name": "Claire MARTIN", "rpps": rpps, "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD}
    return Client(HTTP_ACCEPT_LANGUAGE="en").post(path, data)


def test_the_invitation_takes_the_rpps_and_refuses_a_wrong_one_naming_the_field(admin: Any) -> None:
    issued = invitation_create(actor=admin, email="claire@example.org", role=Role.PHARMACIST, pharmacy=admin.pharmacy)
    wrong = _accept(f"/invite/{issued.token}/", "10100000009")
    assert wrong.status_code == 200 and b"RPPS number: the last digit" in wrong.content
    assert not User.objects.filter(email="claire@example.org").exists()
    assert _accept(f"/invite/{issued.token}/", "101 0000 0008").status_code == 302
    assert User.objects.get(email="claire@example.org").rpps == VALID


def test_the_admin_sets_it_on_the_team_page_audited(as_user: Any, admin: Any, owner: Any) -> None:
    client = as_user(admin)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.post(f"/team/{owner.pk}/rpps/", {"rpps": VALID}, follow=True)
    assert b"The RPPS number is saved." in response.content
    owner.refresh_from_db()
    assert owner.rpps == VALID
    page = client.get("/team/").content.decode()
    assert f'value="{VALID}"' in page and "RPPS number" in page  # shown on the staff list
    event = AuditEvent.objects.get(action="staff.rpps_change")
    assert event.actor_id == admin.pk and event.object_ids == [str(owner.pk)]
    assert VALID not in str(event.__dict__)  # the event names the account, not the number
    wrong = client.post(f"/team/{owner.pk}/rpps/", {"rpps": "12345"}, follow=True)
    assert b"RPPS number: 11 digits" in wrong.content
    owner.refresh_from_db()
    assert owner.rpps == VALID and AuditEvent.objects.filter(action="staff.rpps_change").count() == 1


def test_only_the_admin_of_the_same_pharmacy_or_oneself(admin: Any, owner: Any, colleague: Any, stranger: Any, as_user: Any) -> None:
    with pytest.raises(PermissionDenied):
        staff_rpps_set(actor=colleague, user_id=owner.pk, rpps=VALID)
    with pytest.raises(User.DoesNotExist):
        staff_rpps_set(actor=admin, user_id=stranger.pk, rpps=VALID)
    assert staff_rpps_set(actor=owner, user_id=owner.pk, rpps=VALID_OTHER).rpps == VALID_OTHER
    assert as_user(admin).post(f"/team/{stranger.pk}/rpps/", {"rpps": VALID}).status_code == 404
    assert as_user(owner).post(f"/team/{colleague.pk}/rpps/", {"rpps": VALID}).status_code in {302, 403}
    colleague.refresh_from_db()
    stranger.refresh_from_db()
    assert colleague.rpps == "" and stranger.rpps == ""
