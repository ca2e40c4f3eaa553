"""Art. 34 letters: reviewed and approved by the pharmacy's admin (their letters only) or an operator, then sent through
the real patient channels (loopback SMTP server, SMS gateway); nothing leaves before approval; every step audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relais.accounts.models import Role
from relais.audit.models import AuditEvent, AuditSubject
from relais.breach.management.commands.breach_letter_worker import BreachLetterWorker
from relais.breach.models import BreachLetter, LetterStatus
from relais.patients.services import patient_register
from tests.breach.helpers import build, case_of, iso, report
from tests.factories import identity, make_user

pytestmark = pytest.mark.django_db


def _case(tmp_path: Path, owner: Any, colleague: Any, stranger: Any) -> Any:
    h = build(owner, colleague, stranger)
    return case_of(report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--all")), h


def _drain() -> BreachLetterWorker:
    worker = BreachLetterWorker()
    worker.run(once=True, poll=0)
    return worker


def test_nothing_is_sent_before_approval(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, admin: Any, messaging: Any, as_user: Any
) -> None:
    smtp, sms = messaging
    case, _h = _case(tmp_path, owner, colleague, stranger)
    page = as_user(admin)
    response = page.post(f"/breach/{case.pk}/send/")  # asking to send drafts queues nothing
    assert response.status_code == 302
    _drain()
    assert smtp.store.messages == []
    assert BreachLetter.objects.filter(case=case, send_requested_at__isnull=False).count() == 0
    assert not BreachLetter.objects.filter(case=case).exclude(status=LetterStatus.DRAFT).exists()
    # Approved but not yet asked to send: still nothing goes out.
    assert page.post(f"/breach/{case.pk}/approve/").status_code == 302
    _drain()
    assert BreachLetter.objects.filter(case=case, status=LetterStatus.SENT).count() == 0
    assert sms.messages == []


def test_admin_approves_and_sends_their_pharmacys_letters_through_smtp(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, admin: Any, pharmacy: Any, other_pharmacy: Any, messaging: Any, as_user: Any
) -> None:
    smtp, sms = messaging
    case, h = _case(tmp_path, owner, colleague, stranger)
    page = as_user(admin)
    assert page.get(f"/breach/{case.pk}/").status_code == 200
    assert page.post(f"/breach/{case.pk}/pharmacies/{pharmacy.pk}/approve/").status_code == 302
    assert page.post(f"/breach/{case.pk}/pharmacies/{pharmacy.pk}/send/").status_code == 302
    mine = BreachLetter.objects.filter(case=case, pharmacy=pharmacy)
    assert set(mine.values_list("status", flat=True)) == {LetterStatus.APPROVED}
    assert set(mine.values_list("approved_by", flat=True)) == {admin.pk}
    # The other pharmacy's letters are untouched by this admin.
    assert set(BreachLetter.objects.filter(case=case, pharmacy=other_pharmacy).values_list("status", flat=True)) == {LetterStatus.DRAFT}
    worker = _drain()
    assert worker.counts["sent"] == 3
    assert set(mine.values_list("status", flat=True)) == {LetterStatus.SENT}
    received = smtp.store.messages
    assert sorted(m["to"][0] for m in received) == ["p0@example.org", "p1@example.org", "p2@example.org"]
    text = received[0]["text"]
    assert "Madame, Monsieur" in text and "Dear Sir or Madam" in text and pharmacy.name in text and "dpo@relais.localhost" in text
    assert "ZEBRA" not in text and "Camille" not in text  # addressed by the channel, not named
    assert received[0]["message_id"].startswith("<breach-")
    assert sms.messages == []  # the other pharmacy's SMS letter was not approved
    approvals = AuditEvent.objects.filter(action="breach.letters_approve")
    assert [(e.actor_id, e.pharmacy_id, e.detail) for e in approvals] == [(admin.pk, pharmacy.pk, {"letters": 3})]
    assert AuditEvent.objects.filter(action="breach.letters_send", actor_id=admin.pk).count() == 1
    sent = AuditEvent.objects.filter(action="breach.letter_send")
    assert sent.count() == 3
    for letter in mine:
        assert AuditSubject.objects.filter(object_id=letter.pk, event_id__in=sent.values("id")).exists()
        assert AuditSubject.objects.filter(object_id=letter.patient_id, event_id__in=sent.values("id")).exists()
    assert {e.detail["channel"] for e in sent} == {"email"}
    assert h.a1.pk in set(mine.values_list("patient_id", flat=True))


def test_operator_approves_all_and_sms_goes_to_the_gateway(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, operator: Any, other_pharmacy: Any, messaging: Any, as_user: Any
) -> None:
    _smtp, sms = messaging
    case, _h = _case(tmp_path, owner, colleague, stranger)
    page = as_user(operator)
    assert page.post(f"/breach/{case.pk}/approve/").status_code == 302
    assert page.post(f"/breach/{case.pk}/send/").status_code == 302
    _drain()
    assert BreachLetter.objects.filter(case=case, status=LetterStatus.SENT).count() == 4
    assert [m["to"] for m in sms.messages] == ["+33698765432"]  # b1 gave a phone, no email
    assert "a security incident" in sms.messages[0]["text"] and other_pharmacy.name in sms.messages[0]["text"]
    assert AuditEvent.objects.filter(action="breach.letters_approve", actor_id=operator.pk).count() == 2  # one per pharmacy
    assert AuditEvent.objects.get(action="breach.letter_send", detail__channel="sms").pharmacy_id == other_pharmacy.pk


def test_patient_without_contact_is_flagged_not_lost(
    tmp_path: Path, owner: Any, operator: Any, pharmacy: Any, messaging: Any, as_user: Any
) -> None:
    from django.utils import timezone

    since = timezone.now()
    patient_register(actor=owner, identity=identity(last_name="NOMAIL", nir="", email="", phone=""), allow_duplicate=True)
    case = case_of(report(tmp_path, "--since", iso(since), "--until", iso(timezone.now()), "--pharmacy", pharmacy.finess))
    page = as_user(operator)
    page.post(f"/breach/{case.pk}/approve/")
    page.post(f"/breach/{case.pk}/send/")
    _drain()
    assert list(case.letters.values_list("status", flat=True)) == [LetterStatus.NO_CONTACT]
    assert AuditEvent.objects.filter(action="breach.letter_no_contact").count() == 1


def test_stranger_admin_cannot_see_or_approve_another_pharmacys_letters(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any, other_pharmacy: Any, as_user: Any
) -> None:
    case, _h = _case(tmp_path, owner, colleague, stranger)
    stranger_admin = make_user("stranger-admin@test.example", Role.PHARMACY_ADMIN, other_pharmacy)
    page = as_user(stranger_admin)
    theirs = BreachLetter.objects.filter(case=case, pharmacy=pharmacy).first()
    assert theirs is not None
    assert page.post(f"/breach/{case.pk}/pharmacies/{pharmacy.pk}/approve/").status_code == 404
    assert page.post(f"/breach/{case.pk}/pharmacies/{pharmacy.pk}/send/").status_code == 404
    assert page.get(f"/breach/{case.pk}/letters/{theirs.pk}/").status_code == 404
    assert set(BreachLetter.objects.filter(case=case, pharmacy=pharmacy).values_list("status", flat=True)) == {LetterStatus.DRAFT}
    # Approving "all" only reaches their own pharmacy's letter.
    assert page.post(f"/breach/{case.pk}/approve/").status_code == 302
    assert set(BreachLetter.objects.filter(case=case, status=LetterStatus.APPROVED).values_list("pharmacy_id", flat=True)) == {
        other_pharmacy.pk
    }
    # Their case page shows their pharmacy only, and no Art. 33 draft with other pharmacies' figures.
    body = page.get(f"/breach/{case.pk}/").content.decode()
    assert other_pharmacy.name in body and pharmacy.name not in body and "art. 33" not in body.lower()


def test_a_case_without_the_admins_pharmacy_is_404(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any, other_pharmacy: Any, as_user: Any
) -> None:
    h = build(owner, colleague, stranger)
    case = case_of(report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--pharmacy", pharmacy.finess))
    page = as_user(make_user("stranger-admin@test.example", Role.PHARMACY_ADMIN, other_pharmacy))
    assert page.get(f"/breach/{case.pk}/").status_code == 404
    assert page.post(f"/breach/{case.pk}/approve/").status_code == 404
    assert str(case.pk) not in page.get("/breach/").content.decode()


def test_roles(tmp_path: Path, owner: Any, colleague: Any, stranger: Any, auditor: Any, operator: Any, as_user: Any) -> None:
    case, _h = _case(tmp_path, owner, colleague, stranger)
    letter = case.letters.first()
    assert as_user(owner).get(f"/breach/{case.pk}/").status_code == 403  # pharmacists do not review breaches
    reader = as_user(auditor)
    assert reader.get(f"/breach/{case.pk}/").status_code == 200
    assert reader.post(f"/breach/{case.pk}/approve/").status_code == 403  # auditors read, never approve
    page = as_user(operator).get(f"/breach/{case.pk}/letters/{letter.pk}/")
    body = page.content.decode()
    assert page.status_code == 200 and "Madame, Monsieur" in body and "Dear Sir or Madam" in body
    assert "ZEBRA" not in body and "example.org" not in body
    case_page = as_user(operator).get(f"/breach/{case.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Art. 33" in case_page and 'data-testid="breach-patients">4<' in case_page


def test_pages_in_french_and_the_worker_in_run_workers(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, operator: Any, as_user: Any
) -> None:
    from relais.core.management.commands.run_workers import WORKERS

    assert WORKERS["breach"] is BreachLetterWorker
    case, _h = _case(tmp_path, owner, colleague, stranger)
    page = as_user(operator)
    page.cookies["django_language"] = "fr"
    body = page.get(f"/breach/{case.pk}/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Violation de données" in body and "Approuver toutes les lettres" in body and "RGPD, art. 33" in body


def test_an_auditor_attached_to_a_pharmacy_sees_only_its_part(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any, other_pharmacy: Any, as_user: Any
) -> None:
    """Review finding: an auditor attached to pharmacy B could read pharmacy A's cases, letters and figures."""
    h = build(owner, colleague, stranger)
    only_a = case_of(report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--pharmacy", pharmacy.finess))
    local = as_user(make_user("local-auditor@test.example", Role.AUDITOR, other_pharmacy))
    letter_a = only_a.letters.first()
    assert local.get(f"/breach/{only_a.pk}/").status_code == 404
    assert local.get(f"/breach/{only_a.pk}/letters/{letter_a.pk}/").status_code == 404
    assert str(only_a.pk) not in local.get("/breach/").content.decode()
    # A case spanning both pharmacies: the local auditor sees their pharmacy's part only, no Art. 33 draft.
    both, _h = _case(tmp_path, owner, colleague, stranger)
    theirs = BreachLetter.objects.filter(case=both, pharmacy=pharmacy).first()
    assert theirs is not None
    assert local.get(f"/breach/{both.pk}/letters/{theirs.pk}/").status_code == 404
    body = local.get(f"/breach/{both.pk}/").content.decode()
    assert other_pharmacy.name in body and pharmacy.name not in body and "art. 33" not in body.lower()
    own = BreachLetter.objects.filter(case=both, pharmacy=other_pharmacy).count()
    assert f'<td class="num">{own}</td>' in local.get("/breach/").content.decode()
