"""The test queue's pages: the record form's "result later" button, the queue with its server-rendered countdowns and
flags, the result and cancel forms, the fragment the page reloads, the day's counts, and who may open what."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.patients.services import patient_register
from relais.screenings.models import Screening
from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_DETECTED, RESULT_NOT_DETECTED
from relais.testqueue import services
from relais.testqueue.models import PendingTest
from relais.transfer.models import OutboxMessage
from tests.factories import identity, screening_input

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(as_user: Any) -> Any:
    """Clients whose browser asks for English (the pages' default language is French)."""

    def client(user: Any) -> Any:
        made = as_user(user)
        made.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        return made

    return client


def _form(**overrides: Any) -> dict[str, str]:
    data = {
        "device": "1232",
        "specimen_type": DEFAULT_SPECIMEN,
        "sampled_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "information_notice_given": "on",
        "kit_lot": "",
        "kit_expiry": "",
        "symptoms": "",
        "symptom_onset": "",
    }
    data.update(overrides)
    return data


def _start(actor: Any, patient: Any, minutes_ago: int) -> PendingTest:
    data = screening_input(results={}, sampled_at=timezone.now() - timedelta(minutes=minutes_ago))
    return services.queue_start(actor=actor, patient_id=patient.pk, data=data)


def test_record_form_result_later_puts_the_swab_in_the_queue(owner: Any, patient: Any, as_user: Any) -> None:
    client = as_user(owner)
    page = client.get(f"/patients/{patient.pk}/record/").content.decode()
    assert 'name="queue" value="later"' in page and "enter the result later" in page
    response = client.post(f"/patients/{patient.pk}/record/", _form(queue="later"))
    assert response.status_code == 302 and response["Location"] == "/queue/"
    row = PendingTest.objects.get()
    assert row.patient_id == patient.pk and row.is_open
    assert Screening.objects.count() == 0 and OutboxMessage.objects.count() == 0
    # The main button still records at once, and needs the result.
    response = client.post(f"/patients/{patient.pk}/record/", _form())
    assert response.status_code == 200 and "Choose the result" in response.content.decode()
    assert Screening.objects.count() == 0


def test_record_form_result_later_shows_the_field_in_error(owner: Any, patient: Any, as_user: Any) -> None:
    response = as_user(owner).post(f"/patients/{patient.pk}/record/", _form(queue="later", kit_expiry="2001-01-01"))
    assert response.status_code == 200
    assert "This kit expired on" in response.content.decode()
    assert PendingTest.objects.count() == 0


def test_record_form_result_later_with_a_result_chosen_loses_nothing(owner: Any, patient: Any, as_user: Any) -> None:
    response = as_user(owner).post(f"/patients/{patient.pk}/record/", _form(queue="later", **{"result_sars-cov-2": RESULT_DETECTED}))
    assert response.status_code == 200
    assert "You chose a result" in response.content.decode()
    assert PendingTest.objects.count() == 0 and Screening.objects.count() == 0


def test_queue_page_shows_countdowns_flags_and_order(owner: Any, patient: Any, as_user: Any) -> None:
    other = patient_register(actor=owner, identity=identity(last_name="MARTIN", nir=""))
    third = patient_register(actor=owner, identity=identity(last_name="PETIT", nir=""))
    _start(owner, patient, 2)
    _start(owner, other, 20)
    _start(owner, third, 60)
    response = as_user(owner).get("/queue/")
    page = response.content.decode()
    assert response.status_code == 200
    names = re.findall(r'<th scope="row">([^<]+)</th>', page)
    assert [n.split()[0] for n in names] == ["PETIT", "MARTIN", "DURAND-TESTEUR"]  # the first to read first
    assert re.search(r"ready in 1[23]:\d\d", page)
    assert page.count("Ready to read</span>") == 2
    assert "overdue: no result for 45 min" in page
    assert page.count('data-testid="overdue" hidden') == 2
    assert 'src="/static/queue-timer.js"' in page and "<script>" not in page and "style=" not in page
    assert 'aria-live="polite"' in page
    assert AuditEvent.objects.filter(action="queue.list").count() == 1


def test_fragment_answers_204_while_unchanged(owner: Any, patient: Any, as_user: Any) -> None:
    client = as_user(owner)
    version = services.queue_version(actor=owner)
    assert client.get(f"/queue/list/?v={version}").status_code == 204
    _start(owner, patient, 1)
    response = client.get(f"/queue/list/?v={version}")
    assert response.status_code == 200 and "DURAND-TESTEUR" in response.content.decode()
    assert "<html" not in response.content.decode()


def test_enter_the_result_from_the_queue(owner: Any, patient: Any, as_user: Any) -> None:
    row = _start(owner, patient, 16)
    client = as_user(owner)
    page = client.get(f"/queue/{row.pk}/result/").content.decode()
    assert 'type="radio" name="result_sars-cov-2"' in page and "Ready to read" in page
    response = client.post(f"/queue/{row.pk}/result/", {})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert Screening.objects.count() == 0
    response = client.post(f"/queue/{row.pk}/result/", {"result_sars-cov-2": RESULT_DETECTED}, follow=True)
    assert response.redirect_chain[-1][0] == "/queue/"
    assert "Result recorded" in response.content.decode()
    screening = Screening.objects.get()
    assert OutboxMessage.objects.filter(screening=screening).count() == 1
    row.refresh_from_db()
    assert row.screening_id == screening.pk
    # A second click on the button (or another desk) finds it gone: back to the queue, nothing recorded twice.
    again = client.post(f"/queue/{row.pk}/result/", {"result_sars-cov-2": RESULT_DETECTED}, follow=True)
    assert again.redirect_chain == [("/queue/", 302)] and "no longer in the queue" in again.content.decode()
    assert client.get(f"/queue/{row.pk}/cancel/").status_code == 302
    assert Screening.objects.count() == 1


def test_a_duplicate_shows_the_message_and_keeps_the_row(owner: Any, patient: Any, as_user: Any) -> None:
    row = _start(owner, patient, 16)
    from relais.intake.services import screening_record

    screening_record(actor=owner, patient_id=patient.pk, data=screening_input(sampled_at=row.sampled_at))
    response = as_user(owner).post(f"/queue/{row.pk}/result/", {"result_sars-cov-2": RESULT_NOT_DETECTED})
    assert response.status_code == 200 and "Already recorded" in response.content.decode()
    row.refresh_from_db()
    assert row.is_open


def test_cancel_from_the_result_page(owner: Any, patient: Any, as_user: Any) -> None:
    row = _start(owner, patient, 5)
    client = as_user(owner)
    response = client.post(f"/queue/{row.pk}/cancel/", {"reason": ""})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    response = client.post(f"/queue/{row.pk}/cancel/", {"reason": "Invalid test"})
    assert response.status_code == 302 and response["Location"] == "/queue/"
    row.refresh_from_db()
    assert row.cancelled_at is not None
    assert "No test is waiting" in client.get("/queue/").content.decode()


def test_access_owner_colleague_stranger_and_roles(
    owner: Any, colleague: Any, stranger: Any, operator: Any, auditor: Any, patient: Any, as_user: Any
) -> None:
    row = _start(owner, patient, 5)
    assert as_user(colleague).get(f"/queue/{row.pk}/result/").status_code == 200
    for path in (f"/queue/{row.pk}/result/", f"/queue/{row.pk}/cancel/", f"/queue/{uuid.uuid4()}/result/"):
        assert as_user(stranger).get(path).status_code == 404
    assert as_user(stranger).post(f"/queue/{row.pk}/result/", {"result_sars-cov-2": RESULT_NOT_DETECTED}).status_code == 404
    assert as_user(stranger).post(f"/queue/{row.pk}/cancel/", {"reason": "x"}).status_code == 404
    assert "DURAND" not in as_user(stranger).get("/queue/").content.decode()
    for user in (operator, auditor):
        assert as_user(user).get("/queue/").status_code == 403
    row.refresh_from_db()
    assert row.is_open
    services.queue_cancel(actor=owner, pending_id=row.pk, reason="left")
    assert as_user(stranger).get(f"/queue/{row.pk}/result/").status_code == 404  # closed, still not theirs to know
    assert "/queue/" in as_user(owner).get("/").content.decode()  # nav link and today page


def test_day_dashboard_counts_the_queue(owner: Any, patient: Any, as_user: Any) -> None:
    _start(owner, patient, 2)
    _start(owner, patient, 60)
    page = as_user(owner).get("/day/").content.decode()
    assert 'data-testid="today-in-progress">2<' in page
    assert 'data-testid="today-overdue">1<' in page
