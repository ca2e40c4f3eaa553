from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.intake.services import screening_correct, screening_record
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome
from relais.transfer.services import backoff_seconds, outbox_claim, outbox_record, outbox_release, outbox_resend
from tests.factories import screening_input


def test_recording_writes_its_outbox_row_in_the_same_transaction(screening: Any) -> None:
    message = OutboxMessage.objects.get(screening=screening)
    assert message.status == TransferStatus.PENDING and len(message.message_id) == 20
    assert (message.series_id, message.version, message.pharmacy_id) == (screening.series_id, 1, screening.pharmacy_id)


def test_refused_screening_leaves_no_outbox_row(owner: Any, patient: Any) -> None:
    with pytest.raises(ValidationError):
        screening_record(actor=owner, patient_id=patient.pk, data=screening_input(device_id="nope"))
    assert not OutboxMessage.objects.exists()


def test_corrections_and_removals_are_queued_too(owner: Any, screening: Any) -> None:
    corrected = screening_correct(actor=owner, screening_id=screening.pk, reason="r", results={"sars-cov-2": RESULT_DETECTED})
    removed = screening_correct(actor=owner, screening_id=corrected.pk, reason="r", remove=True)
    versions = list(OutboxMessage.objects.filter(series_id=screening.series_id).order_by("version").values_list("version", "screening_id"))
    assert versions == [(1, screening.pk), (2, corrected.pk), (3, removed.pk)]


def test_a_correction_waits_for_its_original(owner: Any, screening: Any) -> None:
    screening_correct(actor=owner, screening_id=screening.pk, reason="r", results={"sars-cov-2": RESULT_DETECTED})
    first = outbox_claim(owner="a", limit=10)
    assert [m.version for m in first] == [1]
    assert outbox_claim(owner="b", limit=10) == []  # v1 leased, v2 blocked behind it
    outbox_record(owner="a", outcomes={first[0]: Outcome.acknowledged("AA")})
    assert [m.version for m in outbox_claim(owner="b", limit=10)] == [2]


def test_leases_are_exclusive_and_expire(screening: Any) -> None:
    claimed = outbox_claim(owner="a", limit=10)
    assert len(claimed) == 1
    assert outbox_claim(owner="b", limit=10) == []
    later = timezone.now() + timedelta(seconds=61)
    again = outbox_claim(owner="b", limit=10, now=later)  # the first worker died: its lease expired
    assert [m.pk for m in again] == [claimed[0].pk]
    # The dead worker's late write is ignored: only the lease holder records.
    assert outbox_record(owner="a", outcomes={claimed[0]: Outcome.acknowledged("AA")}) == 0
    assert outbox_record(owner="b", outcomes={again[0]: Outcome.acknowledged("AA")}) == 1


def test_release_gives_leases_back(screening: Any) -> None:
    claimed = outbox_claim(owner="a", limit=10)
    outbox_release(owner="a", ids=[m.pk for m in claimed])
    assert len(outbox_claim(owner="b", limit=10)) == 1


def test_transient_failure_backs_off_and_keeps_the_message_id(screening: Any) -> None:
    message = outbox_claim(owner="a", limit=1)[0]
    outbox_record(owner="a", outcomes={message: Outcome.transient("timeout", transmitted=True, retry_after=30)})
    message.refresh_from_db()
    assert message.status == TransferStatus.SENT and message.attempts == 1 and message.last_error == "timeout"
    assert message.next_attempt_at >= timezone.now() + timedelta(seconds=29)
    assert outbox_claim(owner="a", limit=1) == []
    retry = outbox_claim(owner="a", limit=1, now=message.next_attempt_at + timedelta(seconds=1))
    assert retry[0].message_id == message.message_id


def test_permanent_rejection_keeps_the_reason_and_audits_the_transmission(screening: Any) -> None:
    message = outbox_claim(owner="a", limit=1)[0]
    outbox_record(owner="a", outcomes={message: Outcome.rejected("PID-7: birth date missing", ack_code="AR")})
    message.refresh_from_db()
    assert message.status == TransferStatus.REJECTED and message.rejection_reason == "PID-7: birth date missing"
    event = AuditEvent.objects.filter(action="screening.transmit").latest("id")
    assert event.object_ids == [str(screening.pk)] and event.detail["messages"] == [message.message_id]


@override_settings(RELAIS_TRANSFER={"backoff_base": 2.0, "backoff_cap": 60.0})
def test_backoff_grows_with_jitter_and_is_capped() -> None:
    for attempts, ceiling in ((1, 2), (2, 4), (3, 8), (10, 60)):
        samples = [backoff_seconds(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 1
    assert backoff_seconds(1, retry_after=45) == 45


def _rejected(screening: Any) -> OutboxMessage:
    message = outbox_claim(owner="a", limit=1)[0]
    outbox_record(owner="a", outcomes={message: Outcome.rejected("bad", ack_code="AR")})
    return message


def test_resend_is_scoped_to_the_pharmacy(as_user: Any, owner: Any, colleague: Any, stranger: Any, screening: Any) -> None:
    message = _rejected(screening)
    assert as_user(stranger).post(f"/transfer/{message.pk}/resend/").status_code == 404
    message.refresh_from_db()
    assert message.status == TransferStatus.REJECTED
    response = as_user(colleague).post(f"/transfer/{message.pk}/resend/")
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.status == TransferStatus.PENDING and message.rejection_reason == ""


def test_operator_resends_without_seeing_identity(as_user: Any, operator: Any, screening: Any) -> None:
    message = _rejected(screening)
    client = as_user(operator)
    page = client.get("/operator/transfer/")
    assert page.status_code == 200
    assert message.message_id.encode() in page.content and b"DURAND" not in page.content and b"Camille" not in page.content
    client.post(f"/transfer/{message.pk}/resend/")
    message.refresh_from_db()
    assert message.status == TransferStatus.PENDING


def test_pharmacist_sees_the_status_in_plain_words(as_user: Any, owner: Any, screening: Any) -> None:
    message = _rejected(screening)
    page = as_user(owner).get(f"/screenings/{screening.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "refused this result" in page and 'data-testid="rejection-reason">bad<' in page
    assert as_user(owner).get("/operator/transfer/").status_code == 403
    outbox_resend(actor=owner, message_id=message.pk)
    assert "Pending" in as_user(owner).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_screening_model_exposes_latest_transfer(screening: Any) -> None:
    assert Screening.objects.prefetch_related("outbox").get(pk=screening.pk).transfer.status == TransferStatus.PENDING


def test_resending_an_original_after_its_correction_went_out_supersedes_it(owner: Any, screening: Any) -> None:
    original = _rejected(screening)
    correction = screening_correct(actor=owner, screening_id=screening.pk, reason="r", results={"sars-cov-2": RESULT_DETECTED})
    claimed = outbox_claim(owner="a", limit=10)
    assert [m.screening_id for m in claimed] == [correction.pk]  # a rejected original does not block its correction
    outbox_record(owner="a", outcomes={claimed[0]: Outcome.acknowledged("AA")})
    outbox_resend(actor=owner, message_id=original.pk)
    original.refresh_from_db()
    assert original.status == TransferStatus.SUPERSEDED  # never delivered after the newer version
    assert outbox_claim(owner="a", limit=10) == []
