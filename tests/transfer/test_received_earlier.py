"""Issue 16: a version goes out as a correction or removal only to a destination that acknowledged an earlier version
of the same test after sending it (relais.transfer.delivery.received_earlier); elsewhere a correction is the original."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from relais.intake.services import screening_correct, screening_record
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.delivery import Deliverer, received_earlier
from relais.transfer.destinations import Destination
from relais.transfer.models import DestinationHealth, OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome
from relais.transfer.services import outbox_record
from tests.factories import screening_input

pytestmark = pytest.mark.django_db


def _versions(owner: Any, patient: Any) -> tuple[OutboxMessage, OutboxMessage, OutboxMessage]:
    original = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    corrected = screening_correct(actor=owner, screening_id=original.pk, reason="result", results={"sars-cov-2": RESULT_DETECTED})
    removed = screening_correct(actor=owner, screening_id=corrected.pk, reason="wrong patient", remove=True)
    first, second, third = (OutboxMessage.objects.get(screening_id=s.pk) for s in (original, corrected, removed))
    return first, second, third


def _settle(message: OutboxMessage, status: str, *, destination: str = "a", sent: bool = True) -> None:
    OutboxMessage.objects.filter(pk=message.pk).update(status=status, destination=destination, sent_at=timezone.now() if sent else None)


def test_only_an_acknowledged_and_sent_earlier_version_at_the_same_destination_counts(owner: Any, patient: Any) -> None:
    first, second, third = _versions(owner, patient)
    assert received_earlier([first, second, third], destination="a") == set()
    _settle(first, TransferStatus.REJECTED)
    assert received_earlier([second, third], destination="a") == set()
    _settle(first, TransferStatus.ACKNOWLEDGED, sent=False)  # settled without sending (nothing_to_send)
    assert received_earlier([second], destination="a") == set()
    _settle(first, TransferStatus.ACKNOWLEDGED, destination="b")  # another destination holds it, not this one
    assert received_earlier([second], destination="a") == set()
    _settle(first, TransferStatus.ACKNOWLEDGED)
    assert received_earlier([first, second, third], destination="a") == {second.pk, third.pk}


def _report_status(rendered: object) -> str:
    assert isinstance(rendered, str), rendered
    return next(e["resource"]["status"] for e in json.loads(rendered)["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")


def test_the_rendered_status_follows_what_the_destination_holds(owner: Any, patient: Any) -> None:
    _first, second, third = _versions(owner, patient)
    deliverer = Deliverer(Destination(name="a", message_format="fhir", transport="https", url="https://localhost:1/fhir"))
    assert _report_status(deliverer._render_one(second, second.screening, received=False)) == "final"
    assert _report_status(deliverer._render_one(second, second.screening, received=True)) == "corrected"
    assert _report_status(deliverer._render_one(third, third.screening, received=True)) == "entered-in-error"
    skipped = deliverer._render_one(third, third.screening, received=False)
    assert isinstance(skipped, Outcome) and skipped.kind == "acknowledged" and not skipped.transmitted
    assert "nothing to remove" in skipped.detail


def test_a_removal_settled_without_sending_does_not_end_an_outage(owner: Any, patient: Any) -> None:
    """Regression: the receiver never answered it, so the platform is no more reachable than before."""
    _first, _second, third = _versions(owner, patient)
    since = timezone.now()
    DestinationHealth.objects.create(name="a", failing_since=since, last_error="cannot connect to 127.0.0.1:1")
    OutboxMessage.objects.filter(pk=third.pk).update(lease_owner="w")
    third.destination, third.message_format = "a", "hl7v2"
    outbox_record(owner="w", outcomes={third: Outcome.nothing_to_send("not sent: nothing to remove")})
    third.refresh_from_db()
    assert (third.status, third.sent_at) == (TransferStatus.ACKNOWLEDGED, None)
    assert DestinationHealth.objects.get(name="a").failing_since == since
