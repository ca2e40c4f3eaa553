"""Deliverer against the real sandbox: single messages, HL7 batch files, and bad values that must not block others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from relais.intake.services import screening_record
from relais.screenings.models import ScreeningResult
from relais.transfer.delivery import Deliverer
from relais.transfer.destinations import Destination
from relais.transfer.models import OutboxMessage
from tests.factories import screening_input
from tests.transfer.live import Sandbox, start_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield running
    running.stop()


def _destination(sandbox: Sandbox, kind: str) -> Destination:
    certs = sandbox.certs
    tls = {"ca_file": str(certs / "ca.pem"), "cert_file": str(certs / "client.pem"), "key_file": str(certs / "client-key.pem")}
    base = f"https://localhost:{sandbox.ports['https']}"
    return {
        "mllp": Destination(name="t-mllp", message_format="hl7v2", transport="mllp", port=sandbox.ports["mllp"], timeout=5),
        "fhir": Destination(name="t-fhir", message_format="fhir", transport="https", url=f"{base}/fhir", timeout=5, **tls),
        "batch": Destination(
            name="t-batch", message_format="hl7v2", transport="https", url=f"{base}/hl7v2", batch_size=10, timeout=5, **tls
        ),
    }[kind]


def _queue(owner: Any, patient: Any, count: int, message_format: str) -> list[OutboxMessage]:
    for _ in range(count):
        screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    messages = list(OutboxMessage.objects.order_by("created_at"))
    for message in messages:
        message.message_format = message_format
    return messages


@pytest.mark.parametrize(("kind", "message_format"), [("mllp", "hl7v2"), ("fhir", "fhir"), ("batch", "hl7v2")])
def test_one_bad_value_never_blocks_the_others(sandbox: Sandbox, owner: Any, patient: Any, kind: str, message_format: str) -> None:
    sandbox.mode("normal")
    messages = _queue(owner, patient, 4, message_format)
    # A result code with no meaning for the receiver: that message is refused before sending, visibly.
    ScreeningResult.objects.filter(screening_id=messages[1].screening_id).update(result="999999")
    deliverer = Deliverer(_destination(sandbox, kind))
    try:
        outcomes = deliverer.deliver(messages)
    finally:
        deliverer.close()
    kinds = [outcomes[m].kind for m in messages]
    assert kinds == ["acknowledged", "rejected", "acknowledged", "acknowledged"], [outcomes[m] for m in messages]
    assert "cannot be coded" in outcomes[messages[1]].detail and "result" in outcomes[messages[1]].detail
    stored = {row["message_id"] for row in sandbox.control("/control/messages")}
    assert {messages[0].message_id, messages[2].message_id, messages[3].message_id} <= stored
    assert messages[1].message_id not in stored


def test_batch_rejection_reason_comes_back_per_message(sandbox: Sandbox, owner: Any, patient: Any) -> None:
    sandbox.mode("reject", reason="site not registered")
    messages = _queue(owner, patient, 3, "hl7v2")
    deliverer = Deliverer(_destination(sandbox, "batch"))
    try:
        outcomes = deliverer.deliver(messages)
    finally:
        deliverer.close()
        sandbox.mode("normal")
    assert all(o.kind == "rejected" and "site not registered" in o.detail for o in outcomes.values())


def test_identity_quoted_by_the_receiver_is_redacted(sandbox: Sandbox, owner: Any, patient: Any) -> None:
    sandbox.mode("reject", reason="PID-5 DURAND-TESTEUR^Camille born 19940312 not found")
    messages = _queue(owner, patient, 1, "hl7v2")
    deliverer = Deliverer(_destination(sandbox, "mllp"))
    try:
        outcome = deliverer.deliver(messages)[messages[0]]
    finally:
        deliverer.close()
        sandbox.mode("normal")
    assert outcome.kind == "rejected"
    assert "DURAND" not in outcome.detail and "Camille" not in outcome.detail and "19940312" not in outcome.detail
    assert "[redacted]" in outcome.detail and "not found" in outcome.detail


@pytest.mark.parametrize(("kind", "message_format"), [("mllp", "hl7v2"), ("fhir", "fhir"), ("batch", "hl7v2")])
def test_symptoms_and_kit_reach_the_sandbox(sandbox: Sandbox, owner: Any, patient: Any, kind: str, message_format: str) -> None:
    """Issue 15 items 3 and 5: recorded with symptoms, onset, lot and expiry, the test is sent with them and the sandbox
    (hl7apy STRICT / fhir.resources on these first messages) accepts and stores them."""
    sandbox.mode("normal")
    today = timezone.localdate()
    data = screening_input(
        symptoms="yes", symptom_onset=today - timedelta(days=2), kit_lot="QX-0042", kit_expiry=today + timedelta(days=90)
    )
    screening_record(actor=owner, patient_id=patient.pk, data=data)
    message = OutboxMessage.objects.get()
    message.message_format = message_format
    deliverer = Deliverer(_destination(sandbox, kind))
    try:
        outcomes = deliverer.deliver([message])
    finally:
        deliverer.close()
    assert outcomes[message].kind == "acknowledged", outcomes[message]
    (stored,) = sandbox.control(f"/control/messages?with_body=1&message_id={message.message_id}")
    body = stored["body"]
    onset, expiry = (today - timedelta(days=2)), (today + timedelta(days=90))
    if message_format == "hl7v2":
        assert "|CWE|95419-8^Has symptoms related to condition of interest^LN||Y^Yes^HL70136|" in body
        assert f"|DT|65222-2^Date and time of symptom onset^LN||{onset:%Y%m%d}|" in body
        assert "||QX-0042|" in body and f"||{expiry:%Y%m%d}|" in body
    else:
        bundle = json.loads(body)
        resources = [entry["resource"] for entry in bundle["entry"]]
        answers = {r["code"]["coding"][0]["code"]: r for r in resources if r["resourceType"] == "Observation"}
        assert answers["95419-8"]["valueCodeableConcept"]["coding"][0]["code"] == "Y"
        assert answers["65222-2"]["valueDateTime"] == onset.isoformat()
        (device,) = [r for r in resources if r["resourceType"] == "Device"]
        assert (device["lotNumber"], device["expirationDate"]) == ("QX-0042", expiry.isoformat())
