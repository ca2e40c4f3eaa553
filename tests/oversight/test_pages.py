"""Alert pages: auditors see every alert, pharmacy admins their pharmacy's (others 404), staff 403; acknowledge; the
events behind an alert; every read audited."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from relais.accounts.models import Role
from relais.audit.models import AuditEvent
from relais.oversight.models import Alert, AlertKind
from tests.factories import make_user
from tests.oversight.test_rules import events

pytestmark = pytest.mark.django_db


def _alert(pharmacy: Any, event_ids: list[int], actor: Any = None) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        kind=AlertKind.OFF_HOURS,
        key=f"off_hours|{uuid.uuid4()}|x",
        actor_id=actor.pk if actor else None,
        actor_label=actor.email if actor else "",
        pharmacy_id=pharmacy.pk,
        window_start=now - timedelta(days=1),
        window_end=now,
        figures={"reads": len(event_ids), "events": len(event_ids)},
        event_ids=event_ids,
    )


@pytest.fixture
def alerts(pharmacy: Any, other_pharmacy: Any, colleague: Any, stranger: Any, patient: Any) -> tuple[Alert, Alert]:
    ours = events(colleague, "patient.view", [patient.pk], [timezone.now() - timedelta(hours=3)])
    theirs = events(stranger, "patient.view", [uuid.uuid4()], [timezone.now() - timedelta(hours=2)])
    return _alert(pharmacy, [e.pk for e in ours], colleague), _alert(other_pharmacy, [e.pk for e in theirs], stranger)


def test_auditor_sees_every_alert_admin_only_their_pharmacy(as_user: Any, auditor: Any, admin: Any, alerts: tuple[Alert, Alert]) -> None:
    ours, theirs = alerts
    assert set(as_user(auditor).get("/audit/alerts/").context["alerts"]) == {ours, theirs}
    assert as_user(admin).get("/audit/alerts/").context["alerts"] == [ours]
    assert as_user(admin).get(f"/audit/alerts/{theirs.pk}/").status_code == 404
    assert as_user(admin).post(f"/audit/alerts/{theirs.pk}/acknowledge").status_code == 404
    assert Alert.objects.get(pk=theirs.pk).acknowledged_at is None
    viewed = AuditEvent.objects.filter(action="audit.alerts_view").order_by("id")
    assert [e.actor_id for e in viewed] == [auditor.pk, admin.pk]


@pytest.mark.parametrize("who", ["owner", "colleague", "stranger", "operator"])
def test_staff_without_an_audit_role_get_403(who: str, request: Any, as_user: Any, alerts: tuple[Alert, Alert]) -> None:
    client = as_user(request.getfixturevalue(who))
    assert client.get("/audit/alerts/").status_code == 403
    assert client.get(f"/audit/alerts/{alerts[0].pk}/").status_code == 403
    assert client.post(f"/audit/alerts/{alerts[0].pk}/acknowledge").status_code == 403


def test_alert_page_lists_the_events_behind_it_and_acknowledges(
    as_user: Any, admin: Any, colleague: Any, alerts: tuple[Alert, Alert]
) -> None:
    ours, _ = alerts
    client = as_user(admin)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.get(f"/audit/alerts/{ours.pk}/")
    rows = response.context["page"].rows
    assert [r.public_id for r in rows] == list(AuditEvent.objects.filter(id__in=ours.event_ids).values_list("public_id", flat=True))
    assert rows[0].actor_email == colleague.email and "viewed the patient record" in response.content.decode()
    assert AuditEvent.objects.get(action="audit.alert_view").object_ids == [str(ours.pk)]
    assert client.post(f"/audit/alerts/{ours.pk}/acknowledge").status_code == 302
    ours.refresh_from_db()
    assert ours.acknowledged_by == admin and ours.acknowledged_at is not None
    assert AuditEvent.objects.filter(action="audit.alert_ack", object_ids=[str(ours.pk)]).count() == 1
    assert client.get("/audit/alerts/").context["alerts"] == []
    assert client.get("/audit/alerts/", {"acknowledged": "1"}).context["alerts"] == [ours]


def test_a_local_auditor_sees_their_pharmacy_alerts_only(as_user: Any, other_pharmacy: Any, alerts: tuple[Alert, Alert]) -> None:
    local = make_user("local-auditor@test.example", Role.AUDITOR, other_pharmacy)
    assert as_user(local).get("/audit/alerts/").context["alerts"] == [alerts[1]]
    assert as_user(local).get(f"/audit/alerts/{alerts[0].pk}/").status_code == 404
