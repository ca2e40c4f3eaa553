"""Issue 16: "My account": any pharmacy staff member enters or changes their own RPPS number (POST only, validated,
audited as staff.rpps_change with themselves as actor); operators and auditors have no such page."""

from __future__ import annotations

from typing import Any

import pytest

from relais.audit.models import AuditEvent

VALID = "10100000008"
VALID_OTHER = "10001234565"


def _client(as_user: Any, user: Any) -> Any:
    client = as_user(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_a_staff_member_sets_their_own_rpps_audited(who: str, request: Any, as_user: Any, colleague: Any) -> None:
    user = request.getfixturevalue(who)
    client = _client(as_user, user)
    page = client.get("/account/").content.decode()
    assert 'name="rpps"' in page and 'href="/account/"' in page  # the form, and the navigation links to it
    response = client.post("/account/", {"rpps": "101 0000 0008"}, follow=True)
    assert b"Your RPPS number is saved." in response.content
    user.refresh_from_db()
    assert user.rpps == VALID
    assert f'value="{VALID}"' in client.get("/account/").content.decode()
    event = AuditEvent.objects.get(action="staff.rpps_change")
    assert event.actor_id == user.pk and event.object_ids == [str(user.pk)]
    assert VALID not in str(event.__dict__)
    # a change; saving the same number again writes no second event
    client.post("/account/", {"rpps": VALID_OTHER})
    client.post("/account/", {"rpps": VALID_OTHER})
    user.refresh_from_db()
    assert user.rpps == VALID_OTHER and AuditEvent.objects.filter(action="staff.rpps_change").count() == 2
    # removing it
    client.post("/account/", {"rpps": ""})
    user.refresh_from_db()
    assert user.rpps == "" and AuditEvent.objects.filter(action="staff.rpps_change").count() == 3
    colleague.refresh_from_db()
    assert colleague.rpps == ""


def test_a_wrong_number_is_refused_next_to_the_field_and_changes_nothing(as_user: Any, owner: Any) -> None:
    owner.rpps = VALID
    owner.save(update_fields=["rpps"])
    client = _client(as_user, owner)
    for wrong, message in (("10100000009", "RPPS number: the last digit"), ("12345", "RPPS number: 11 digits")):
        response = client.post("/account/", {"rpps": wrong})
        assert response.status_code == 200
        page = response.content.decode()
        assert message in page and 'id="id_rpps_error"' in page and 'aria-invalid="true"' in page
        owner.refresh_from_db()
        assert owner.rpps == VALID
    assert not AuditEvent.objects.filter(action="staff.rpps_change").exists()


def test_only_ones_own_account(as_user: Any, owner: Any, colleague: Any, stranger: Any) -> None:
    """The page takes no account id: whatever is posted, only the signed-in user's number changes."""
    client = _client(as_user, owner)
    client.post("/account/", {"rpps": VALID, "user_id": str(colleague.pk), "id": str(stranger.pk)})
    client.post(f"/account/?user_id={colleague.pk}", {"rpps": VALID})
    for other in (colleague, stranger):
        other.refresh_from_db()
        assert other.rpps == ""
    owner.refresh_from_db()
    assert owner.rpps == VALID
    # the administrator's team endpoint stays closed to a pharmacist, and to another pharmacy
    assert _client(as_user, colleague).post(f"/team/{owner.pk}/rpps/", {"rpps": VALID_OTHER}).status_code == 403
    assert _client(as_user, stranger).post(f"/team/{owner.pk}/rpps/", {"rpps": VALID_OTHER}).status_code == 403
    owner.refresh_from_db()
    assert owner.rpps == VALID


@pytest.mark.parametrize("who", ["operator", "auditor"])
def test_operators_and_auditors_have_no_such_page(who: str, request: Any, as_user: Any) -> None:
    user = request.getfixturevalue(who)
    client = _client(as_user, user)
    assert client.get("/account/").status_code == 403
    assert client.post("/account/", {"rpps": VALID}).status_code == 403
    user.refresh_from_db()
    assert user.rpps == ""
    assert 'href="/account/"' not in client.get("/").content.decode()
    assert not AuditEvent.objects.filter(action="staff.rpps_change").exists()


def test_the_change_needs_the_csrf_token(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    client.handler.enforce_csrf_checks = True
    assert client.get("/account/").status_code == 200
    assert client.post("/account/", {"rpps": VALID}).status_code == 403
    owner.refresh_from_db()
    assert owner.rpps == ""
