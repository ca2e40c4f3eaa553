"""Issue 11: the destination a message is sent to picks its format and transport when it is sent.

Before, the format was fixed when the test was recorded, from the recording process's settings: tests recorded under the
HL7 v2 destination and sent by a worker set to FHIR were POSTed as HL7 to the FHIR endpoint, answered 415, marked rejected,
and a resend repeated it. Every pair below records under one destination and delivers under another."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from relais.intake.services import screening_correct, screening_record
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer import services as transfer
from relais.transfer.delivery import Deliverer
from relais.transfer.destinations import Destination, check_destination, destination
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.registry import FORMATS, TRANSPORTS
from tests.factories import screening_input
from tests.transfer.live import Relais, Sandbox, relais_env, start_sandbox

NAMES = ["sandbox-mllp-hl7v2", "sandbox-https-hl7v2", "sandbox-https-hl7v2-batch", "sandbox-https-fhir"]
SANDBOX_FORMAT = {"hl7v2": "hl7v2", "fhir": "fhir"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield running
    running.stop()


def _transfer_settings(settings: Any, sandbox: Sandbox, recorded_under: str) -> dict[str, Any]:
    """The project's own destinations, pointed at this sandbox."""
    certs = sandbox.certs
    tls = {"ca_file": str(certs / "ca.pem"), "cert_file": str(certs / "client.pem"), "key_file": str(certs / "client-key.pem")}
    destinations = {}
    for name, values in settings.RELAIS_TRANSFER["destinations"].items():
        values = {**values, **(tls if values["transport"] == "https" else {})}
        if values["transport"] == "mllp":
            values["port"] = sandbox.ports["mllp"]
        else:
            values["url"] = values["url"].replace(values["url"].split("/")[2], f"localhost:{sandbox.ports['https']}")
        destinations[name] = values
    return {**settings.RELAIS_TRANSFER, "destination": recorded_under, "destinations": destinations, "timeout": 5.0}


def _deliver_everything(target: Destination) -> None:
    """What the worker does, in-process: claim, deliver, record, until nothing is due."""
    deliverer = Deliverer(target, concurrency=2)
    try:
        for _ in range(10):
            claimed = transfer.outbox_claim(owner="test", limit=50)
            if not claimed:
                return
            transfer.outbox_record(owner="test", outcomes=deliverer.deliver(claimed))
    finally:
        deliverer.close()


@pytest.mark.parametrize(("recorded_under", "sent_to"), list(itertools.permutations(NAMES, 2)))
def test_a_result_recorded_under_one_destination_arrives_once_in_the_format_of_another(
    settings: Any, sandbox: Sandbox, owner: Any, patient: Any, recorded_under: str, sent_to: str
) -> None:
    sandbox.mode("normal")
    settings.RELAIS_TRANSFER = _transfer_settings(settings, sandbox, recorded_under)
    first = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    screening_correct(actor=owner, screening_id=first.pk, reason="misread", results={"sars-cov-2": RESULT_DETECTED})

    settings.RELAIS_TRANSFER = {**settings.RELAIS_TRANSFER, "destination": sent_to}  # the configuration changes
    target = destination()
    _deliver_everything(target)

    messages = list(OutboxMessage.objects.all())
    assert len(messages) == 3
    assert {(m.status, m.destination, m.message_format) for m in messages} == {
        (TransferStatus.ACKNOWLEDGED, sent_to, target.message_format)
    }, [(m.status, m.last_error, m.rejection_reason) for m in messages]
    received = [row for row in sandbox.control("/control/messages") if row["message_id"] in {m.message_id for m in messages}]
    assert Counter(row["message_id"] for row in received) == Counter({m.message_id: 1 for m in messages})
    assert {row["format"] for row in received} == {SANDBOX_FORMAT[target.message_format]}
    assert {row["transport"] for row in received} == {target.transport}


def test_a_resend_is_rendered_for_the_destination_in_force(settings: Any, sandbox: Sandbox, owner: Any, patient: Any) -> None:
    settings.RELAIS_TRANSFER = _transfer_settings(settings, sandbox, "sandbox-mllp-hl7v2")
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    sandbox.mode("reject", reason="site not registered")
    try:
        _deliver_everything(destination())
    finally:
        sandbox.mode("normal")
    message = OutboxMessage.objects.get()
    assert (message.status, message.message_format) == (TransferStatus.REJECTED, "hl7v2")

    settings.RELAIS_TRANSFER = {**settings.RELAIS_TRANSFER, "destination": "sandbox-https-fhir"}
    assert transfer.outbox_resend_all() == 1
    _deliver_everything(destination())
    message.refresh_from_db()
    assert (message.status, message.destination, message.message_format) == (TransferStatus.ACKNOWLEDGED, "sandbox-https-fhir", "fhir")
    [row] = [r for r in sandbox.control("/control/messages") if r["message_id"] == message.message_id]
    assert row["format"] == "fhir"


def test_a_correction_still_waits_for_its_original_when_the_destination_changed(
    settings: Any, sandbox: Sandbox, owner: Any, patient: Any
) -> None:
    settings.RELAIS_TRANSFER = _transfer_settings(settings, sandbox, "sandbox-mllp-hl7v2")
    first = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    settings.RELAIS_TRANSFER = {**settings.RELAIS_TRANSFER, "destination": "sandbox-https-fhir"}
    screening_correct(actor=owner, screening_id=first.pk, reason="misread", results={"sars-cov-2": RESULT_DETECTED})
    claimed = transfer.outbox_claim(owner="test", limit=50)
    assert [m.version for m in claimed] == [1]  # the correction is held back until the original is settled


def test_the_registry_refuses_unknown_or_mismatched_pairs() -> None:
    assert set(FORMATS) == {"hl7v2", "fhir"} and set(TRANSPORTS) == {"mllp", "https"}
    check_destination(Destination(name="ok", message_format="fhir", transport="https"))
    for fmt, transport in [("fhir", "mllp"), ("csv", "https"), ("hl7v2", "ftp")]:
        with pytest.raises(ImproperlyConfigured):
            check_destination(Destination(name="bad", message_format=fmt, transport=transport))


def test_tests_recorded_by_a_process_set_to_hl7_reach_a_worker_set_to_fhir(tmp_path: Path) -> None:
    """The integrator's case, with real processes: record with one setting, run the worker with another."""
    sandbox = start_sandbox(tmp_path)
    try:
        recorder = Relais(relais_env(tmp_path, sandbox, destination="sandbox-mllp-hl7v2"))
        recorder.manage("migrate", "--no-input")
        recorder.manage("loadgen", "--screenings", "4", "--patients", "2", "--correct-share", "0.5", "--no-progress")
        sender = Relais(relais_env(tmp_path, sandbox, destination="sandbox-https-fhir"))
        sender.manage("transfer_worker", "--until-empty", timeout=120)
        stats = sender.stats(messages=True)
        assert set(stats["by_status"]) == {"acknowledged"}, stats["by_status"]
        received = sandbox.control("/control/messages")
        assert received and {row["format"] for row in received} == {"fhir"}
        assert len({row["message_id"] for row in received}) == len(received)
    finally:
        sandbox.stop()


def test_enqueueing_reads_no_destination(settings: Any, owner: Any, patient: Any) -> None:
    with override_settings(RELAIS_TRANSFER={**settings.RELAIS_TRANSFER, "destination": "no-such-destination"}):
        screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    message = OutboxMessage.objects.get()
    assert (message.destination, message.message_format) == ("", "")
