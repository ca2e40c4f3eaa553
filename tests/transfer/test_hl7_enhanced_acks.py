"""Relais against the sandbox process in the enhanced acknowledgement mode (``--ack-mode enhanced``).

Relais's HL7 messages ask for enhanced acknowledgement (MSH-15 AL, MSH-16 NE: ELR PHLabReport-NoAck), so the sandbox
answers accept (commit) acknowledgements: CA for a stored message, CE for a refused content. Delivered as the worker
does (Deliverer, then outbox_record under a lease), over MLLP and HTTPS, one by one and in batches: a CA settles the
message as acknowledged, a CE as rejected with the sandbox's reason, and a rejected message is never claimed again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import hl7
import pytest
from django.utils import timezone

from relais.intake.services import screening_record
from relais.transfer.delivery import Deliverer
from relais.transfer.destinations import Destination
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.services import outbox_claim
from tests.factories import screening_input
from tests.transfer.live import Sandbox, settle, start_sandbox

REASON = "INS qualifiée requise"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"), "--ack-mode", "enhanced")
    yield running
    running.stop()


def _destination(sandbox: Sandbox, transport: str, batch_size: int) -> Destination:
    if transport == "mllp":
        return Destination(
            name="t-mllp", message_format="hl7v2", transport="mllp", port=sandbox.ports["mllp"], timeout=5, batch_size=batch_size
        )
    certs = sandbox.certs
    return Destination(
        name="t-https",
        message_format="hl7v2",
        transport="https",
        url=f"https://localhost:{sandbox.ports['https']}/hl7v2",
        ca_file=str(certs / "ca.pem"),
        cert_file=str(certs / "client.pem"),
        key_file=str(certs / "client-key.pem"),
        timeout=5,
        batch_size=batch_size,
    )


def _deliver(sandbox: Sandbox, messages: list[OutboxMessage], transport: str, batch_size: int) -> dict[OutboxMessage, Any]:
    for message in messages:
        message.message_format = "hl7v2"
    deliverer = Deliverer(_destination(sandbox, transport, batch_size))
    try:
        return settle(deliverer.deliver(messages))
    finally:
        deliverer.close()


def _new_messages(owner: Any, patient: Any, count: int) -> list[OutboxMessage]:
    screenings = [screening_record(actor=owner, patient_id=patient.pk, data=screening_input()) for _ in range(count)]
    return [OutboxMessage.objects.get(screening_id=screening.pk) for screening in screenings]


TRANSPORTS = [("mllp", 1), ("mllp", 3), ("https", 1), ("https", 3)]
TRANSPORT_IDS = ["mllp", "mllp-batch", "https", "https-batch"]


@pytest.mark.parametrize(("transport", "batch_size"), TRANSPORTS, ids=TRANSPORT_IDS)
def test_ca_settles_as_acknowledged(sandbox: Sandbox, owner: Any, patient: Any, transport: str, batch_size: int) -> None:
    sandbox.mode("normal")
    assert sandbox.control("/control/mode")["ack_mode"] == "enhanced"
    messages = _new_messages(owner, patient, 2)
    outcomes = _deliver(sandbox, messages, transport, batch_size)
    assert [(o.kind, o.ack_code) for o in outcomes.values()] == [("acknowledged", "CA")] * 2, outcomes

    stored = {row["message_id"]: row for row in sandbox.control("/control/messages?with_body=1")}
    for message in messages:
        message.refresh_from_db()
        assert (message.status, message.ack_code, message.attempts) == (TransferStatus.ACKNOWLEDGED, "CA", 1)
        assert message.acknowledged_at is not None and message.rejection_reason == ""
        msh = hl7.parse(stored[message.message_id]["body"]).segment("MSH")
        assert (str(msh[15]), str(msh[16])) == ("AL", "NE")  # what made the sandbox answer an accept acknowledgement


@pytest.mark.parametrize(("transport", "batch_size"), TRANSPORTS, ids=TRANSPORT_IDS)
def test_ce_settles_as_rejected_with_the_reason_and_is_not_retried(
    sandbox: Sandbox, owner: Any, patient: Any, transport: str, batch_size: int
) -> None:
    sandbox.mode("reject", reason=REASON)
    try:
        before = len(sandbox.control("/control/messages"))
        messages = _new_messages(owner, patient, 2)
        outcomes = _deliver(sandbox, messages, transport, batch_size)
    finally:
        sandbox.mode("normal")
    assert [(o.kind, o.ack_code) for o in outcomes.values()] == [("rejected", "CE")] * 2, outcomes
    assert len(sandbox.control("/control/messages")) == before  # nothing stored

    for message in messages:
        message.refresh_from_db()
        assert (message.status, message.ack_code, message.attempts) == (TransferStatus.REJECTED, "CE", 1)
        assert message.rejected_at is not None and message.acknowledged_at is None
        assert REASON in message.rejection_reason
    # no retry: however late, the worker's claim never takes a rejected message again
    claimed = outbox_claim(owner="t-probe", limit=100, now=timezone.now() + timedelta(days=30))
    assert not {m.pk for m in claimed} & {m.pk for m in messages}
