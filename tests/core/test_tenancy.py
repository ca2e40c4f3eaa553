"""Every view that shows a pharmacy's object: owner and colleague see it, a stranger gets 404."""

from __future__ import annotations

from typing import Any

import pytest

from relais.audit.models import AuditEvent

OBJECT_VIEWS = [
    ("patient", "/patients/{patient}/"),
    ("patient", "/patients/{patient}/contact/"),
    ("patient", "/patients/{patient}/record/"),
    ("screening", "/screenings/{screening}/"),
    ("screening", "/screenings/{screening}/correct/"),
]


def _url(template: str, screening: Any) -> str:
    return template.format(patient=screening.patient_id, screening=screening.pk)


@pytest.mark.parametrize(("kind", "template"), OBJECT_VIEWS)
@pytest.mark.parametrize("who", ["owner", "colleague"])
def test_same_pharmacy_sees_it(request: Any, as_user: Any, screening: Any, kind: str, template: str, who: str) -> None:
    client = as_user(request.getfixturevalue(who))
    response = client.get(_url(template, screening))
    assert response.status_code == 200


@pytest.mark.parametrize(("kind", "template"), OBJECT_VIEWS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_stranger_gets_404_and_nothing_changes(as_user: Any, stranger: Any, screening: Any, kind: str, template: str, method: str) -> None:
    client = as_user(stranger)
    response = getattr(client, method)(_url(template, screening), {"reason": "x", "action": "remove", "phone": "0612345678"})
    assert response.status_code == 404
    assert b"DURAND" not in response.content
    screening.refresh_from_db()
    assert screening.is_current and screening.status == "final"
    touched = [e for e in AuditEvent.objects.filter(actor_id=stranger.pk) if str(screening.patient_id) in e.object_ids]
    assert touched == []


@pytest.mark.parametrize("who", ["operator", "auditor"])
@pytest.mark.parametrize(("kind", "template"), OBJECT_VIEWS)
def test_operator_and_auditor_never_see_patients(request: Any, as_user: Any, screening: Any, who: str, kind: str, template: str) -> None:
    response = as_user(request.getfixturevalue(who)).get(_url(template, screening))
    assert response.status_code == 403
    assert b"DURAND" not in response.content


def test_today_list_is_scoped(as_user: Any, screening: Any, owner: Any, colleague: Any, stranger: Any) -> None:
    assert b"DURAND-TESTEUR" in as_user(owner).get("/").content
    assert b"DURAND-TESTEUR" in as_user(colleague).get("/").content
    assert b"DURAND-TESTEUR" not in as_user(stranger).get("/").content


def test_search_is_scoped(as_user: Any, patient: Any, owner: Any, colleague: Any, stranger: Any) -> None:
    for user, visible in ((owner, True), (colleague, True), (stranger, False)):
        response = as_user(user).post("/patients/", {"nir": "294037512000591"})
        assert (b"DURAND-TESTEUR" in response.content) is visible


def test_team_deactivation_is_scoped(as_user: Any, admin: Any, colleague: Any, stranger: Any) -> None:
    client = as_user(admin)
    assert client.post(f"/team/{stranger.pk}/deactivate/").status_code == 404
    stranger.refresh_from_db()
    assert stranger.is_active
    assert client.post(f"/team/{colleague.pk}/deactivate/").status_code == 302
    colleague.refresh_from_db()
    assert not colleague.is_active


def test_pharmacist_cannot_manage_team(as_user: Any, owner: Any, colleague: Any) -> None:
    assert as_user(owner).get("/team/").status_code == 403
    assert as_user(owner).post(f"/team/{colleague.pk}/deactivate/").status_code == 403
