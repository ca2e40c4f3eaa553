"""Operators resend refused messages in bulk (issue 15, item 8): all of a destination, or those of one reason, after a
confirmation, in a fixed number of statements, audited once, for platform operators only."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from relais.audit.models import AuditEvent
from relais.intake.services import screening_correct, screening_record
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome
from relais.transfer.services import outbox_claim, outbox_record, outbox_resend_batch
from tests.factories import screening_input

URL = "/operator/transfer/resend/"
IN_FORCE = "sandbox-mllp-hl7v2"
IDENTITY = "INS non qualifiée"


def _refuse(owner: Any, patient: Any, reasons: list[tuple[str, str]]) -> list[OutboxMessage]:
    """One recorded test per (destination, reason), refused with that reason."""
    for _ in reasons:
        screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    claimed = sorted(outbox_claim(owner="w", limit=len(reasons)), key=lambda m: m.created_at)
    outcomes = {}
    for message, (destination, reason) in zip(claimed, reasons, strict=True):
        message.destination = destination
        outcomes[message] = Outcome.rejected(reason, ack_code="AE")
    outbox_record(owner="w", outcomes=outcomes)
    return claimed


def _status(message: OutboxMessage) -> str:
    message.refresh_from_db()
    return message.status


def test_resend_by_reason_after_confirmation(as_user: Any, operator: Any, owner: Any, patient: Any) -> None:
    a, b, c, other = _refuse(
        owner, patient, [(IN_FORCE, IDENTITY), (IN_FORCE, IDENTITY), (IN_FORCE, "HTTP 400: bad"), ("elsewhere", IDENTITY)]
    )
    client = as_user(operator)
    page = client.get("/operator/transfer/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert page.count('data-testid="reason-group"') == 3 and 'data-testid="resend-all"' in page
    assert "Renvoyer les 2" in page  # the button of the largest group

    confirm = client.post(URL, {"destination": IN_FORCE, "reason": IDENTITY}, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "2 messages refusés ou mis de côté pour sandbox-mllp-hl7v2 repartiront dans la file." in confirm
    assert {_status(m) for m in (a, b, c, other)} == {TransferStatus.REJECTED}  # nothing yet
    assert not AuditEvent.objects.filter(action="transfer.resend_batch").exists()

    response = client.post(URL, {"destination": IN_FORCE, "reason": IDENTITY, "confirm": "1"})
    assert response.status_code == 302
    assert (_status(a), _status(b), _status(c), _status(other)) == ("pending", "pending", "rejected", "rejected")
    event = AuditEvent.objects.get(action="transfer.resend_batch")
    assert event.detail["count"] == 2 and event.detail["reason_kind"] == "identity" and event.detail["requeued"] == 2
    assert {str(a.pk), str(b.pk), str(a.screening_id), str(b.screening_id)} <= {str(i) for i in event.object_ids}
    assert IDENTITY not in str(event.detail)  # the kind, never the receiver's text

    client.post(URL, {"destination": IN_FORCE, "confirm": "1"})  # all of the destination: the last one
    assert (_status(c), _status(other)) == ("pending", "rejected")
    assert AuditEvent.objects.filter(action="transfer.resend_batch").count() == 2


def test_pharmacy_staff_cannot_resend_in_bulk(as_user: Any, owner: Any, admin: Any, patient: Any) -> None:
    [message] = _refuse(owner, patient, [(IN_FORCE, IDENTITY)])
    for user in (owner, admin):
        assert as_user(user).post(URL, {"destination": IN_FORCE, "confirm": "1"}).status_code == 403
    with pytest.raises(PermissionDenied):
        outbox_resend_batch(actor=owner, destination=IN_FORCE)
    assert _status(message) == TransferStatus.REJECTED


def test_bulk_resend_is_a_fixed_number_of_statements(operator: Any, owner: Any, patient: Any) -> None:
    messages = _refuse(owner, patient, [(IN_FORCE, IDENTITY)] * 12)
    with CaptureQueriesContext(connection) as queries:
        assert outbox_resend_batch(actor=operator, destination=IN_FORCE) == 12
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE") and "transfer_outboxmessage" in q["sql"]]
    assert len(updates) == 2  # the superseded, then the rest: no save per message
    assert {_status(m) for m in messages} == {TransferStatus.PENDING}
    assert all(m.rejection_reason == "" for m in OutboxMessage.objects.all())


def test_an_original_already_replaced_is_superseded_not_resent(operator: Any, owner: Any, patient: Any) -> None:
    [original] = _refuse(owner, patient, [(IN_FORCE, IDENTITY)])
    screening_correct(actor=owner, screening_id=original.screening_id, reason="r", results={"sars-cov-2": RESULT_DETECTED})
    [correction] = outbox_claim(owner="w", limit=1)
    outbox_record(owner="w", outcomes={correction: Outcome.acknowledged("AA")})
    assert outbox_resend_batch(actor=operator, destination=IN_FORCE) == 1
    assert _status(original) == TransferStatus.SUPERSEDED
    assert AuditEvent.objects.get(action="transfer.resend_batch").detail["superseded"] == 1
