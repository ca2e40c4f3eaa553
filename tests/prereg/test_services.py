"""Pre-registration services: expiry, rate limits, codes, encryption at rest, confirm/discard with their audit, the purge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from relais.audit.labels import ACTION_LABELS
from relais.audit.models import AuditEvent
from relais.core import schedule
from relais.patients.models import Patient
from relais.prereg import services
from relais.prereg.models import PreRegistration, RateHit
from tests.factories import identity

pytestmark = pytest.mark.django_db


def _submit(pharmacy: Any, *, address: str = "203.0.113.7", now: Any = None, **overrides: Any) -> PreRegistration:
    link = services.link_for(pharmacy=pharmacy)
    return services.prereg_submit(link=link, identity=identity(**overrides), client_address=address, now=now)


def _actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_identity_is_encrypted_at_rest(pharmacy: Any) -> None:
    row = _submit(pharmacy)
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_name, first_names, date_of_birth, nir, phone, email FROM prereg_preregistration")
        raw = " ".join(cursor.fetchone())
    for clear in ("DURAND", "Camille", "1994-03-12", "294037512000591", "612345678", "camille.durand"):
        assert clear not in raw
    fresh = PreRegistration.objects.get(pk=row.pk)
    assert (fresh.last_name, fresh.date_of_birth.isoformat()) == ("DURAND-TESTEUR", "1994-03-12")
    assert fresh.retention_key  # under a day's retention key, shredded by the retention purge after expiry
    assert "DURAND" not in str(fresh)


def test_code_is_short_unambiguous_and_unique_in_the_pharmacy(pharmacy: Any, monkeypatch: Any) -> None:
    first = _submit(pharmacy)
    assert len(first.code) == 6 and set(first.code) <= set(services.CODE_ALPHABET)
    assert not set(first.code) & set("0O1IL2Z5S8B")
    # The next draw gives the same code first: it is refused by the database and another is drawn.
    draws = iter([first.code, first.code, "ACDEFG"])
    monkeypatch.setattr(services, "_new_code", lambda: next(draws))
    second = _submit(pharmacy, address="203.0.113.8")
    assert second.code == "ACDEFG"
    assert PreRegistration.objects.filter(pharmacy=pharmacy).count() == 2


def test_same_code_may_exist_in_another_pharmacy(pharmacy: Any, other_pharmacy: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(services, "_new_code", lambda: "ACDEFG")
    assert _submit(pharmacy).code == _submit(other_pharmacy).code == "ACDEFG"


def test_expired_is_never_shown_even_before_the_purge(pharmacy: Any, owner: Any) -> None:
    long_ago = timezone.now() - timedelta(hours=25)
    row = _submit(pharmacy, now=long_ago)
    assert row.expires_at == long_ago + timedelta(hours=24)
    assert PreRegistration.objects.filter(pk=row.pk).exists()  # still in the table: the purge has not run
    assert services.prereg_list(actor=owner) == []
    assert services.prereg_find(actor=owner, code=row.code) is None
    assert services.public_status(prereg_id=str(row.pk)) is None
    with pytest.raises(PreRegistration.DoesNotExist):
        services.prereg_get(actor=owner, prereg_id=row.pk)
    with pytest.raises(PreRegistration.DoesNotExist):
        services.prereg_confirm(actor=owner, prereg_id=row.pk)
    assert not Patient.objects.exists()


def test_rate_limit_per_address(pharmacy: Any, settings: Any) -> None:
    settings.RELAIS_PREREG = {"per_address_per_hour": 3}
    for _ in range(3):
        _submit(pharmacy, address="198.51.100.1")
    with pytest.raises(services.RateLimited) as refused:
        _submit(pharmacy, address="198.51.100.1")
    assert refused.value.scope == "address"
    assert PreRegistration.objects.count() == 3
    _submit(pharmacy, address="198.51.100.2")  # another address is not held back
    # An hour later the address may send again.
    _submit(pharmacy, address="198.51.100.1", now=timezone.now() + timedelta(minutes=61))
    # Never the address itself in the table.
    assert not RateHit.objects.filter(key__contains="198.51.100").exists()


def test_rate_limit_per_link(pharmacy: Any, other_pharmacy: Any, settings: Any) -> None:
    settings.RELAIS_PREREG = {"per_link_per_hour": 2}
    _submit(pharmacy, address="192.0.2.1")
    _submit(pharmacy, address="192.0.2.2")
    with pytest.raises(services.RateLimited) as refused:
        _submit(pharmacy, address="192.0.2.3")
    assert refused.value.scope == "link"
    _submit(other_pharmacy, address="192.0.2.3")  # another pharmacy's link has its own count


def test_rotated_link_no_longer_opens(pharmacy: Any, admin: Any, owner: Any) -> None:
    old = services.link_for(pharmacy=pharmacy).token
    assert services.link_by_token(token=old) is not None
    new = services.link_rotate(actor=admin).token
    assert new != old
    assert services.link_by_token(token=old) is None
    assert services.link_by_token(token=new) is not None
    assert "prereg.link_rotate" in _actions()
    with pytest.raises(PermissionDenied):
        services.link_rotate(actor=owner)  # a pharmacist may print the poster, not replace the link


def test_confirm_registers_audits_and_deletes(pharmacy: Any, owner: Any) -> None:
    row = _submit(pharmacy)
    assert services.prereg_find(actor=owner, code=row.code.lower()[:3] + " " + row.code.lower()[3:]) == row
    resolution = services.prereg_confirm(actor=owner, prereg_id=row.pk)
    assert resolution.created and not resolution.needs_review
    patient = Patient.objects.get()
    assert (patient.last_name, patient.phone, patient.pharmacy_id) == ("DURAND-TESTEUR", "+33612345678", pharmacy.pk)
    assert not PreRegistration.objects.exists()
    event = AuditEvent.objects.get(action="prereg.confirm")
    assert set(event.object_ids) == {str(row.pk), str(patient.pk)}
    assert event.detail["created"] is True
    assert "patient.create" in _actions()


def test_confirm_matches_the_registered_patient(pharmacy: Any, owner: Any, patient: Any) -> None:
    row = _submit(pharmacy, phone="+33698765432")
    resolution = services.prereg_confirm(actor=owner, prereg_id=row.pk)
    assert not resolution.created and resolution.patient.pk == patient.pk
    assert Patient.objects.count() == 1
    patient.refresh_from_db()
    assert patient.phone == "+33698765432"  # newer contact details replace the old ones, as for any submitted identity


def test_confirm_with_a_look_alike_flags_for_review(pharmacy: Any, owner: Any, patient: Any) -> None:
    row = _submit(pharmacy, first_names="Camille", nir="", sex="M")
    resolution = services.prereg_confirm(actor=owner, prereg_id=row.pk)
    assert resolution.created and resolution.needs_review
    assert Patient.objects.count() == 2


def test_confirm_with_a_corrected_identity(pharmacy: Any, owner: Any) -> None:
    row = _submit(pharmacy, first_names="Camile")
    services.prereg_confirm(actor=owner, prereg_id=row.pk, identity=identity())
    assert Patient.objects.get().first_names == "Camille"
    assert AuditEvent.objects.get(action="prereg.confirm").detail["corrected_fields"] == ["first_names"]


def test_other_pharmacy_sees_nothing(pharmacy: Any, stranger: Any) -> None:
    row = _submit(pharmacy)
    assert services.prereg_list(actor=stranger) == []
    assert services.prereg_find(actor=stranger, code=row.code) is None
    for call in (services.prereg_get, services.prereg_confirm, services.prereg_discard):
        with pytest.raises(PreRegistration.DoesNotExist):
            call(actor=stranger, prereg_id=row.pk)
    assert PreRegistration.objects.filter(pk=row.pk).exists()


def test_discard_audits_and_deletes(pharmacy: Any, colleague: Any) -> None:
    row = _submit(pharmacy)
    services.prereg_discard(actor=colleague, prereg_id=row.pk)
    assert not PreRegistration.objects.exists() and not Patient.objects.exists()
    event = AuditEvent.objects.get(action="prereg.discard")
    assert event.object_ids == [str(row.pk)] and event.actor_id == colleague.pk


def test_reads_and_submission_are_audited(pharmacy: Any, owner: Any) -> None:
    row = _submit(pharmacy)
    submitted = AuditEvent.objects.get(action="prereg.submit")
    assert submitted.pharmacy_id == pharmacy.pk and submitted.actor_id is None and submitted.object_ids == [str(row.pk)]
    services.prereg_list(actor=owner)
    services.prereg_find(actor=owner, code="XXXXXX")
    services.prereg_get(actor=owner, prereg_id=row.pk)
    listed = AuditEvent.objects.get(action="prereg.list")
    assert listed.object_ids == [str(row.pk)] and listed.actor_id == owner.pk
    assert AuditEvent.objects.get(action="prereg.lookup").detail == {"found": False}
    assert AuditEvent.objects.filter(action="prereg.view", object_ids=[str(row.pk)]).count() == 1
    for action in set(_actions()):
        assert action in ACTION_LABELS, action


def test_patient_may_withdraw(pharmacy: Any) -> None:
    row = _submit(pharmacy)
    assert services.public_withdraw(prereg_id=str(row.pk))
    assert not PreRegistration.objects.exists()
    assert "prereg.withdraw" in _actions()
    assert not services.public_withdraw(prereg_id=str(row.pk))


def test_purge_job_deletes_what_expired(pharmacy: Any) -> None:
    assert schedule.jobs()["prereg.purge"].every == timedelta(hours=1)
    now = timezone.now()
    old = _submit(pharmacy, now=now - timedelta(hours=24, minutes=1), address="192.0.2.10")
    live = _submit(pharmacy, now=now - timedelta(hours=23), address="192.0.2.11")
    report = schedule.run_now("prereg.purge", now=now)
    assert report["expired_deleted"] == 1 and report["rate_hits_deleted"] == 4  # both submissions' hits are over an hour old
    assert list(PreRegistration.objects.values_list("pk", flat=True)) == [live.pk]
    event = AuditEvent.objects.get(action="prereg.purge")
    assert event.object_ids == [str(old.pk)] and event.detail == {"deleted": 1}
    assert schedule.run_now("prereg.purge", now=now) == {"expired_deleted": 0, "rate_hits_deleted": 0}


def test_key_rotation_keeps_pre_registrations_readable_under_their_day_key(pharmacy: Any, owner: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    row = _submit(pharmacy)
    call_command("rotate_keys", "--no-progress", stdout=StringIO(), stderr=StringIO())
    fresh = services.prereg_get(actor=owner, prereg_id=row.pk)
    assert fresh.last_name == "DURAND-TESTEUR" and fresh.retention_key == row.retention_key


def test_purge_never_decrypts_so_a_shredded_key_does_not_stop_it(pharmacy: Any) -> None:
    from relais.core import crypto

    now = timezone.now()
    row = _submit(pharmacy, now=now - timedelta(days=3))
    crypto.destroy_key(row.retention_key)  # the retention purge shreds the day's key after expiry
    crypto.forget_keys()
    assert services.purge(now=now)["expired_deleted"] == 1
    assert not PreRegistration.objects.exists()
