"""The pharmacy's day: counts and chart against known tests (another pharmacy's not counted), the today list fragment,
exports (CSV formula-safe, French or English headers, PDF register), their audit events, and who may open what."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time, timedelta
from typing import Any

import pdfplumber
import pytest
from django.test import Client
from django.utils import timezone

from relais.accounts.models import User
from relais.audit.models import AuditEvent, AuditSubject
from relais.frontdesk.csvfile import safe
from relais.frontdesk.exports import MAX_DAYS
from relais.frontdesk.selectors import CHART_DAYS, day_figures
from relais.intake.services import screening_record
from relais.notify.models import Notification, NotificationStatus
from relais.patients.services import patient_register
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.models import OutboxMessage, TransferStatus
from tests.factories import identity, screening_input

pytestmark = pytest.mark.django_db


def _at(day: date, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


class Day:
    """Tests recorded on chosen days for one pharmacy's patient."""

    def __init__(self, actor: User, **names: Any) -> None:
        self.actor = actor
        self.patient = patient_register(actor=actor, identity=identity(nir="", **names))
        self.n = 0

    def test(self, day: date, *, positive: bool = False) -> Screening:
        self.n += 1
        results = {"sars-cov-2": RESULT_DETECTED} if positive else {"sars-cov-2": "260415000"}
        data = screening_input(sampled_at=timezone.now() - timedelta(minutes=self.n), results=results)
        screening = screening_record(actor=self.actor, patient_id=self.patient.pk, data=data)
        Screening.objects.filter(pk=screening.pk).update(recorded_at=_at(day, 8 + self.n % 10))
        return screening


def _reject(screening: Screening, when: datetime) -> None:
    OutboxMessage.objects.filter(screening=screening).update(status=TransferStatus.REJECTED, rejected_at=when, rejection_reason="INS")


def _fail_message(screening: Screening, when: datetime) -> None:
    """One of the test's messages (the SMS, say) failed; the other went."""
    first = Notification.objects.filter(screening=screening).order_by("channel").first()
    assert first is not None, "the patient has an email and a phone"
    Notification.objects.filter(pk=first.pk).update(status=NotificationStatus.FAILED, failed_at=when)


@pytest.fixture
def today() -> date:
    return timezone.localdate()


@pytest.fixture
def known(owner: User, stranger: User, today: date) -> dict[str, Any]:
    """Today: 3 tests (1 positive, 1 rejected, 1 message failed); earlier this week and 10 days ago some more; the other
    pharmacy has tests, rejections and failures today that must never be counted."""
    mine = Day(owner)
    week_start = today - timedelta(days=today.weekday())
    t1 = mine.test(today, positive=True)
    t2 = mine.test(today)
    t3 = mine.test(today)
    _reject(t2, _at(today, 9))
    _fail_message(t3, _at(today, 9))
    earlier = [mine.test(week_start, positive=True)] if week_start != today else []
    old = mine.test(today - timedelta(days=10), positive=True)
    _reject(old, _at(today - timedelta(days=10)))
    theirs = Day(stranger, last_name="AILLEURS")
    for _n in range(4):
        s = theirs.test(today, positive=True)
        _reject(s, _at(today, 9))
        _fail_message(s, _at(today, 9))
    return {"today": [t1, t2, t3], "earlier": earlier, "old": old, "patient": mine.patient}


def test_counts_of_today_and_the_week_leave_other_pharmacies_out(owner: User, known: dict[str, Any], today: date) -> None:
    figures = day_figures(actor=owner)
    assert (figures.today.tests, figures.today.positives, figures.today.rejections, figures.today.failed_messages) == (3, 1, 1, 1)
    extra = len(known["earlier"])
    assert (figures.week.tests, figures.week.positives, figures.week.rejections, figures.week.failed_messages) == (
        3 + extra,
        1 + extra,
        1,
        1,
    )


def test_a_resent_rejection_is_no_longer_counted(owner: User, known: dict[str, Any]) -> None:
    from relais.transfer.services import outbox_resend

    _t1, t2, _t3 = known["today"]
    outbox_resend(actor=owner, message_id=OutboxMessage.objects.get(screening=t2).pk)
    figures = day_figures(actor=owner)
    assert (figures.today.rejections, figures.week.rejections) == (0, 0)


def test_a_corrected_test_counts_once_and_a_removed_one_not_at_all(owner: User, known: dict[str, Any]) -> None:
    from relais.intake.services import screening_correct

    t1, t2, _t3 = known["today"]
    screening_correct(actor=owner, screening_id=t1.pk, reason="typo", results={"sars-cov-2": "260415000"})
    screening_correct(actor=owner, screening_id=t2.pk, reason="wrong patient", remove=True)
    figures = day_figures(actor=owner)
    assert (figures.today.tests, figures.today.positives) == (2, 0)  # t1 corrected to negative, t2 removed


def test_chart_numbers_are_the_tests_per_day(owner: User, known: dict[str, Any], today: date, as_user: Any) -> None:
    figures = day_figures(actor=owner)
    assert len(figures.days) == CHART_DAYS and figures.days[-1].day == today
    by_day = {d.day: (d.tests, d.positives) for d in figures.days}
    assert by_day[today] == (3, 1)
    assert by_day[today - timedelta(days=10)] == (1, 1)
    assert sum(t for t, _p in by_day.values()) == 4 + len(known["earlier"])

    page = as_user(owner).get("/day/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'role="img"' in page and '<title id="day-chart-title">' in page
    assert f'data-day="{today.isoformat()}" data-tests="3" data-positives="1"' in page
    ten = (today - timedelta(days=10)).isoformat()
    assert f'data-day="{ten}" data-tests="1" data-positives="1"' in page
    assert 'data-testid="day-chart-table"' in page  # the text fallback
    assert 'data-testid="today-tests">3<' in page and 'data-testid="today-rejections">1<' in page
    assert 'data-testid="today-failed">1<' in page and 'data-testid="today-positives">1<' in page
    assert "style=" not in page  # CSP: no inline style attributes


def test_dashboard_needs_queries_not_rows(owner: User, known: dict[str, Any], django_assert_max_num_queries: Any) -> None:
    with django_assert_max_num_queries(4):  # tests per day, rejections, failed messages, the test queue's open rows
        day_figures(actor=owner)


def test_who_may_open_the_day(owner: User, admin: User, stranger: User, operator: User, auditor: User, as_user: Any) -> None:
    assert as_user(owner).get("/day/").status_code == 200
    assert as_user(admin).get("/day/").status_code == 200
    assert as_user(operator).get("/day/").status_code == 403
    assert as_user(auditor).get("/day/").status_code == 403
    assert as_user(operator).get("/day/today/").status_code == 403
    assert as_user(operator).post("/day/export/", {"first_day": "2026-01-01", "last_day": "2026-01-01", "fmt": "csv"}).status_code == 403
    assert Client().get("/day/").status_code == 302


def test_the_today_fragment_is_the_list_scoped_and_audited(
    owner: User, colleague: User, stranger: User, known: dict[str, Any], as_user: Any
) -> None:
    response = as_user(colleague).get("/day/today/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    body = response.content.decode()
    assert "<html" not in body and body.count("<tr>") == 4  # header + today's 3 tests
    assert "DURAND-TESTEUR" in body and "AILLEURS" not in body
    event = AuditEvent.objects.filter(actor_id=colleague.pk, action="screening.list").latest("id")
    assert {str(t.pk) for t in known["today"]} <= set(event.object_ids)
    theirs = as_user(stranger).get("/day/today/").content.decode()
    assert "DURAND-TESTEUR" not in theirs and theirs.count("<tr>") == 5


def test_an_unchanged_list_is_not_read_again(owner: User, known: dict[str, Any], as_user: Any) -> None:
    """Each open home page asks every 30 s: while nothing changed the answer is 204, no name is read, nothing audited."""
    client = as_user(owner)
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    version = re.search(r'data-list-version="(\w+)"', page)
    assert version is not None
    audited = AuditEvent.objects.filter(action="screening.list").count()
    unchanged = client.get(f"/day/today/?v={version.group(1)}")
    assert unchanged.status_code == 204 and unchanged.content == b""
    assert AuditEvent.objects.filter(action="screening.list").count() == audited

    for change in (
        lambda: _reject(known["today"][0], timezone.now()),  # a transmission status
        lambda: _fail_message(known["today"][0], timezone.now()),  # a message status
        lambda: Day(owner, last_name="NOUVEAU").test(timezone.localdate()),  # a new test
    ):
        before = client.get(f"/day/today/?v={version.group(1)}")
        assert before.status_code in (200, 204)
        change()
        changed = client.get(f"/day/today/?v={version.group(1)}")
        assert changed.status_code == 200 and b"<table" in changed.content
        version = re.search(r'data-list-version="(\w+)"', changed.content.decode())
        assert version is not None
    assert b"NOUVEAU" in changed.content
    assert AuditEvent.objects.filter(action="screening.list").count() == audited + 3


def test_home_page_refreshes_itself_and_works_without_script(owner: User, known: dict[str, Any], as_user: Any) -> None:
    page = as_user(owner).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-fragment-url="/day/today/"' in page and "/static/day-refresh.js" in page
    assert 'data-testid="refresh-link"' in page and "<script>" not in page
    assert page.count("DURAND-TESTEUR") == 3


def _export(client: Client, first: date, last: date, fmt: str = "csv", lang: str = "en") -> Any:
    return client.post(
        "/day/export/", {"first_day": first.isoformat(), "last_day": last.isoformat(), "fmt": fmt}, HTTP_ACCEPT_LANGUAGE=lang
    )


def _csv(response: Any) -> list[list[str]]:
    raw = b"".join(response.streaming_content)
    assert raw.startswith("\ufeff".encode())
    text = raw.decode("utf-8")[1:]
    return list(csv.reader(io.StringIO(text), delimiter=";" if text.split("\r\n")[0].count(";") else ","))


def test_csv_export_of_the_day_in_english(owner: User, known: dict[str, Any], today: date, as_user: Any) -> None:
    response = _export(as_user(owner), today, today)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="relais-registre-{today.isoformat()}.csv"'
    assert response.streaming  # rows are read and written a chunk at a time
    rows = _csv(response)
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])  # in sampling order
    assert rows[0] == [
        "Sampled at",
        "Patient",
        "Date of birth",
        "Test kit",
        "Kit lot",
        "Kit expiry date",
        "Result",
        "National platform",
        "Certificate",
    ]
    assert len(rows) == 4
    assert {r[1] for r in rows[1:]} == {"DURAND-TESTEUR Camille"} and {r[2] for r in rows[1:]} == {"1994-03-12"}
    assert sorted(r[6] for r in rows[1:]) == ["SARS-CoV-2: Detected (positive)"] + ["SARS-CoV-2: Not detected (negative)"] * 2
    assert sorted(r[7] for r in rows[1:]).count("Rejected") == 1
    assert {r[8] for r in rows[1:]} <= {"Yes", "No"} and "Yes" in {r[8] for r in rows[1:]}


def test_csv_export_in_french_has_french_headers_and_values(owner: User, known: dict[str, Any], today: date, as_user: Any) -> None:
    rows = _csv(_export(as_user(owner), today, today, lang="fr"))
    assert rows[0] == [
        "Prélevé le",
        "Patient",
        "Date de naissance",
        "Test utilisé",
        "Lot du test",
        "Date de péremption du test",
        "Résultat",
        "Plateforme nationale",
        "Certificat",
    ]
    assert {r[8] for r in rows[1:]} <= {"Oui", "Non"}
    page = as_user(owner).get("/day/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "La journée" in page and "refusés par la plateforme nationale" in page and "Télécharger le tableur (CSV)" in page
    assert any("Positif" in r[6] or "positif" in r[6] for r in rows[1:])


def test_csv_cells_cannot_become_formulas(owner: User, today: date, as_user: Any) -> None:
    day = Day(owner, last_name='=HYPERLINK("http://evil.example","x")', first_names="+1-@")
    day.test(today)
    rows = _csv(_export(as_user(owner), today, today))
    assert rows[1][1].startswith("'=HYPERLINK(")
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert safe(value) == "'" + value
    assert safe("DURAND") == "DURAND" and safe("") == ""


def test_export_writes_one_audit_event_naming_every_patient(
    owner: User, stranger: User, known: dict[str, Any], today: date, as_user: Any
) -> None:
    other = Day(owner, last_name="MARTIN", first_names="Léa")
    other.test(today - timedelta(days=1))
    first = today - timedelta(days=2)
    response = _export(as_user(owner), first, today)
    rows = _csv(response)
    assert len(rows) == 1 + 3 + 1 + len([s for s in known["earlier"] if Screening.objects.get(pk=s.pk).recorded_at >= _at(first, 0)])
    event = AuditEvent.objects.filter(actor_id=owner.pk, action="screening.export").get()
    subjects = set(AuditSubject.objects.filter(event_id=event.pk).values_list("object_id", flat=True))
    assert subjects == {known["patient"].pk, other.patient.pk}
    assert event.detail["format"] == "csv" and event.detail["first_day"] == first.isoformat() and event.detail["tests"] == len(rows) - 1
    assert "DURAND" not in str(event.detail)


def test_export_of_nothing_is_still_audited_and_the_stranger_gets_only_theirs(
    stranger: User, known: dict[str, Any], today: date, as_user: Any
) -> None:
    rows = _csv(_export(as_user(stranger), today, today))
    assert len(rows) == 5 and {r[1] for r in rows[1:]} == {"AILLEURS Camille"}
    rows = _csv(_export(as_user(stranger), today - timedelta(days=5), today - timedelta(days=5)))
    assert len(rows) == 1
    assert AuditEvent.objects.filter(actor_id=stranger.pk, action="screening.export").count() == 2


def test_export_periods_are_bounded_and_no_identity_travels_in_the_address(owner: User, today: date, as_user: Any) -> None:
    client = as_user(owner)
    too_long = _export(client, today - timedelta(days=MAX_DAYS), today)
    assert too_long.status_code == 400 and b"at most 31 days" in too_long.content
    assert b'aria-describedby="id_last_day_error"' in too_long.content
    backwards = _export(client, today, today - timedelta(days=1))
    assert backwards.status_code == 400
    assert _export(client, today - timedelta(days=MAX_DAYS - 1), today).status_code == 200
    assert client.get("/day/export/").status_code == 405
    assert not AuditEvent.objects.filter(action="screening.export", detail__tests__isnull=True).exists()


def test_pdf_register_is_a_pdf_with_one_line_per_test(owner: User, known: dict[str, Any], today: date, as_user: Any) -> None:
    day = Day(owner, last_name="LONGNAME", first_names="Marie-Christine-Élisabeth")
    for _n in range(40):  # enough for a second page
        day.test(today)
    response = _export(as_user(owner), today, today, fmt="pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    with pdfplumber.open(io.BytesIO(response.content)) as pdf:
        pages = [p.extract_text() or "" for p in pdf.pages]
        assert all(p.width > p.height for p in pdf.pages)  # landscape
    assert len(pages) >= 2
    text = "\n".join(pages)
    assert "Pharmacie du Test" in pages[0] and "Pharmacie du Test" in pages[-1]
    assert f"Page 1 of {len(pages)}" in pages[0] and f"Page {len(pages)} of {len(pages)}" in pages[-1]
    assert "43 tests" in pages[0]
    assert text.count("LONGNAME") == 40 and text.count("DURAND-TESTEUR") == 3
    numbers = [line.split()[0] for line in text.splitlines() if line.split() and line.split()[0].isdigit()]
    assert numbers[-1] == "43"
    event = AuditEvent.objects.filter(actor_id=owner.pk, action="screening.export").get()
    assert event.detail["format"] == "pdf" and event.detail["tests"] == 43
