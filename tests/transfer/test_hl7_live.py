"""Issue 16, end to end over MLLP: a test recorded, corrected, then removed in Relais and delivered as HL7 v2.5.1 to the
sandbox process is ONE record there (keyed on the filler order number, the same in every version) with three
versions (final, corrected, removed); a correction whose original the sandbox never received is refused (AE)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hl7
import pytest

from relais.intake.services import screening_correct, screening_record
from relais.screenings.vocab import RESULT_DETECTED, RESULT_NOT_DETECTED
from relais.transfer.delivery import Deliverer
from relais.transfer.destinations import Destination
from relais.transfer.identifiers import RPPS_OID, namespace
from relais.transfer.models import OutboxMessage
from tests.factories import screening_input
from tests.transfer.live import Sandbox, settle, start_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield running
    running.stop()


def _deliver(sandbox: Sandbox, messages: list[OutboxMessage], *, batch_size: int = 1) -> dict[OutboxMessage, Any]:
    for message in messages:
        message.message_format = "hl7v2"
    destination = Destination(
        name="t-mllp", message_format="hl7v2", transport="mllp", port=sandbox.ports["mllp"], timeout=5, batch_size=batch_size
    )
    deliverer = Deliverer(destination)
    try:
        return settle(deliverer.deliver(messages))
    finally:
        deliverer.close()


def _deliver_in(sandbox: Sandbox, message: OutboxMessage, *, owner: Any, patient: Any, batch_size: int) -> Any:
    """Deliver one version of a test alone, or in an HL7 batch file with another test's original: the worker never
    claims two versions of one test together (outbox_claim), so a batch holds at most one."""
    if batch_size == 1:
        return _deliver(sandbox, [message])[message]
    other = OutboxMessage.objects.get(screening_id=screening_record(actor=owner, patient_id=patient.pk, data=screening_input()).pk)
    outcomes = _deliver(sandbox, [message, other], batch_size=batch_size)
    assert outcomes[other].kind == "acknowledged", outcomes
    return outcomes[message]


def _three_versions(owner: Any, patient: Any) -> list[Any]:
    original = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    corrected = screening_correct(actor=owner, screening_id=original.pk, reason="wrong result", results={"sars-cov-2": RESULT_DETECTED})
    removed = screening_correct(actor=owner, screening_id=corrected.pk, reason="wrong patient", remove=True)
    return [original, corrected, removed]


@pytest.mark.parametrize("batch_size", [1, 3], ids=["one-by-one", "batch"])
def test_recorded_corrected_removed_is_one_record_with_three_versions(sandbox: Sandbox, owner: Any, patient: Any, batch_size: int) -> None:
    sandbox.mode("normal")
    owner.rpps = "10001234567"
    owner.save(update_fields=["rpps"])
    versions = _three_versions(owner, patient)
    messages = [OutboxMessage.objects.get(screening_id=v.pk) for v in versions]
    outcomes = {m: _deliver_in(sandbox, m, owner=owner, patient=patient, batch_size=batch_size) for m in messages}
    assert all(outcome.kind == "acknowledged" for outcome in outcomes.values()), outcomes

    key = str(versions[0].series_id)
    records = [r for r in sandbox.control("/control/records?format=hl7v2") if r["test_key"] == key]
    assert [(r["versions"], r["status"]) for r in records] == [(3, "removed")]
    history = sandbox.control(f"/control/history?test_key={key}&format=hl7v2&with_body=1")
    ids = [m.message_id for m in messages]
    assert [(v["sequence"], v["version_status"], v["message_id"]) for v in history] == [
        (1, "final", ids[0]),
        (2, "corrected", ids[1]),
        (3, "removed", ids[2]),
    ]
    assert len(set(ids)) == 3  # MSH-10 changes per version
    # What the receiver holds, read with python-hl7: the same order numbers, the statuses, the pharmacist's RPPS
    for version, (obx_11, obr_25) in zip(history, [("F", "F"), ("C", "C"), ("D", "C")], strict=True):
        message = hl7.parse(version["body"])
        assert str(message.segment("MSH")[10]) == version["message_id"]
        for name in ("ORC", "OBR"):
            segment = message.segment(name)
            assert [str(segment[n][0][0]) for n in (2, 3)] == [key, key]
            assert str(segment[3][0][2]) == namespace("order").oid
        assert str(message.segment("OBR")[25]) == obr_25
        assert {str(s[11]) for s in message.segments("OBX")} == {obx_11}
        provider = message.segment("ORC")[12][0]
        assert str(provider[0]) == "810001234567" and str(provider[8][1]) == RPPS_OID


def test_a_correction_whose_original_never_went_out_is_sent_as_the_original(sandbox: Sandbox, owner: Any, patient: Any) -> None:
    sandbox.mode("normal")
    original, corrected, removed = _three_versions(owner, patient)
    message = OutboxMessage.objects.get(screening_id=corrected.pk)  # the original is never sent (superseded, say)
    assert _deliver(sandbox, [message])[message].kind == "acknowledged"
    history = sandbox.control(f"/control/history?test_key={original.series_id}&format=hl7v2&with_body=1")
    assert [(v["sequence"], v["version_status"], v["message_id"]) for v in history] == [(1, "final", message.message_id)]
    assert {str(s[11]) for s in hl7.parse(history[0]["body"]).segments("OBX")} == {"F"}
    # The removal that follows is a D of what the platform holds now
    removal = OutboxMessage.objects.get(screening_id=removed.pk)
    assert _deliver(sandbox, [removal])[removal].kind == "acknowledged"
    assert [v["version_status"] for v in sandbox.control(f"/control/history?test_key={original.series_id}&format=hl7v2")] == [
        "final",
        "removed",
    ]


@pytest.mark.parametrize("batch_size", [1, 3], ids=["one-by-one", "batch"])
def test_the_fix_of_an_original_the_platform_refused_goes_as_an_original(
    sandbox: Sandbox, owner: Any, patient: Any, batch_size: int
) -> None:
    """Regression (issue 16): the fix of a refused original went out as a correction (OBX-11 C), which a receiver
    holding no original refuses ("matches no original"); it must be the original (F) there."""
    sandbox.mode("reject", reason="PID-7 birth date in the future")
    original = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    first = OutboxMessage.objects.get(screening_id=original.pk)
    assert _deliver(sandbox, [first])[first].kind == "rejected"
    sandbox.mode("normal")
    fixed = screening_correct(actor=owner, screening_id=original.pk, reason="birth date", results={"sars-cov-2": RESULT_DETECTED})
    again = screening_correct(actor=owner, screening_id=fixed.pk, reason="result", results={"sars-cov-2": RESULT_NOT_DETECTED})
    messages = [OutboxMessage.objects.get(screening_id=v.pk) for v in (fixed, again)]
    outcomes = {m: _deliver_in(sandbox, m, owner=owner, patient=patient, batch_size=batch_size) for m in messages}
    assert [o.kind for o in outcomes.values()] == ["acknowledged", "acknowledged"], outcomes
    history = sandbox.control(f"/control/history?test_key={original.series_id}&format=hl7v2&with_body=1")
    assert [(v["version_status"], v["message_id"]) for v in history] == [
        ("final", messages[0].message_id),
        ("corrected", messages[1].message_id),
    ]
    assert [{str(s[11]) for s in hl7.parse(v["body"]).segments("OBX")} for v in history] == [{"F"}, {"C"}]


def test_the_removal_of_a_test_the_platform_never_accepted_is_not_sent(sandbox: Sandbox, owner: Any, patient: Any) -> None:
    sandbox.mode("reject")
    original = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    first = OutboxMessage.objects.get(screening_id=original.pk)
    assert _deliver(sandbox, [first])[first].kind == "rejected"
    sandbox.mode("normal")
    before = len(sandbox.control("/control/messages"))
    removed = screening_correct(actor=owner, screening_id=original.pk, reason="wrong patient", remove=True)
    removal = OutboxMessage.objects.get(screening_id=removed.pk)
    outcome = _deliver(sandbox, [removal])[removal]
    assert outcome.kind == "acknowledged" and not outcome.transmitted and "nothing to remove" in outcome.detail
    assert len(sandbox.control("/control/messages")) == before
    assert sandbox.control(f"/control/history?test_key={original.series_id}") == []
    removal.refresh_from_db()
    assert (removal.status, removal.sent_at) == ("acknowledged", None)
