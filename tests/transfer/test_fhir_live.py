"""Issue 16, end to end: a test recorded, corrected, then removed in Relais and delivered over HTTPS to the sandbox
process as FHIR is ONE record there with three versions (final, corrected, entered-in-error); a patient first sent
without identity then with it is ONE Patient with the identity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from relais.intake.services import screening_correct, screening_record
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.delivery import Deliverer
from relais.transfer.destinations import Destination
from relais.transfer.formats import fhir
from relais.transfer.identifiers import namespace
from relais.transfer.models import OutboxMessage
from relais.transfer.transports.https import HttpsTransport
from tests.factories import screening_input
from tests.transfer.live import Sandbox, settle, start_sandbox
from tests.transfer.payload_factory import sample_patient, sample_payload


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield running
    running.stop()


def _tls(sandbox: Sandbox) -> dict[str, str]:
    certs = sandbox.certs
    return {"ca_file": str(certs / "ca.pem"), "cert_file": str(certs / "client.pem"), "key_file": str(certs / "client-key.pem")}


def _deliver(sandbox: Sandbox, message: OutboxMessage) -> Any:
    message.message_format = "fhir"
    url = f"https://localhost:{sandbox.ports['https']}/fhir"
    deliverer = Deliverer(Destination(name="t-fhir", message_format="fhir", transport="https", url=url, timeout=5, **_tls(sandbox)))
    try:
        return settle(deliverer.deliver([message]))[message]
    finally:
        deliverer.close()


def test_recorded_corrected_removed_is_one_record_with_three_versions(sandbox: Sandbox, owner: Any, patient: Any) -> None:
    sandbox.mode("normal")
    original = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    corrected = screening_correct(actor=owner, screening_id=original.pk, reason="wrong result", results={"sars-cov-2": RESULT_DETECTED})
    removed = screening_correct(actor=owner, screening_id=corrected.pk, reason="wrong patient", remove=True)
    for version in (original, corrected, removed):
        outcome = _deliver(sandbox, OutboxMessage.objects.get(screening_id=version.pk))
        assert outcome.kind == "acknowledged", outcome

    key = f"{fhir.systems().order}|{original.series_id}"
    history = sandbox.control(f"/control/fhir-resources?type=DiagnosticReport&identifier={key.replace('|', '%7C')}")
    assert [(r["meta"]["versionId"], r["status"]) for r in history] == [("1", "final"), ("2", "corrected"), ("3", "entered-in-error")]
    assert len({r["id"] for r in history}) == 1
    reports = [r for r in sandbox.control("/control/fhir-resources") if r["resourceType"] == "DiagnosticReport" and r["identifier"] == key]
    assert [(r["versions"], r["status"]) for r in reports] == [(3, "entered-in-error")]
    records = [r for r in sandbox.control("/control/records?format=fhir") if r["test_key"] == key]  # the store's view
    assert [(r["status"], r["versions"]) for r in records] == [("removed", 3)]
    stored = {row["message_id"]: row for row in sandbox.control("/control/messages")}
    ids = [OutboxMessage.objects.get(screening_id=v.pk).message_id for v in (original, corrected, removed)]
    assert [stored[i]["placer"] for i in ids] == [str(original.series_id)] * 3
    # The pharmacist who recorded them (no RPPS entered): one Practitioner under the staff namespace, never re-versioned.
    staff = f"{namespace('staff').system}|{owner.pk}"
    resources = sandbox.control("/control/fhir-resources")
    assert [r["versions"] for r in resources if r["resourceType"] == "Practitioner" and r["identifier"] == staff] == [1]


def test_the_fix_of_an_original_the_platform_refused_is_written_as_final(sandbox: Sandbox, owner: Any, patient: Any) -> None:
    """Regression (issue 16): it went as status "corrected" of a resource the server never had."""
    sandbox.mode("reject", reason="birth date in the future")
    original = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    assert _deliver(sandbox, OutboxMessage.objects.get(screening_id=original.pk)).kind == "rejected"
    sandbox.mode("normal")
    fixed = screening_correct(actor=owner, screening_id=original.pk, reason="birth date", results={"sars-cov-2": RESULT_DETECTED})
    assert _deliver(sandbox, OutboxMessage.objects.get(screening_id=fixed.pk)).kind == "acknowledged"
    key = f"{fhir.systems().order}|{original.series_id}"
    history = sandbox.control(f"/control/fhir-resources?type=DiagnosticReport&identifier={key.replace('|', '%7C')}")
    assert [(r["meta"]["versionId"], r["status"]) for r in history] == [("1", "final")]
    removed = screening_correct(actor=owner, screening_id=fixed.pk, reason="wrong patient", remove=True)
    assert _deliver(sandbox, OutboxMessage.objects.get(screening_id=removed.pk)).kind == "acknowledged"
    history = sandbox.control(f"/control/fhir-resources?type=DiagnosticReport&identifier={key.replace('|', '%7C')}")
    assert [r["status"] for r in history] == ["final", "entered-in-error"]


def test_identity_that_arrives_later_reaches_the_one_patient(sandbox: Sandbox) -> None:
    sandbox.mode("normal")
    pseudonym = "0123456789abcdef0123456789abcdef"
    transport = HttpsTransport(url=f"https://localhost:{sandbox.ports['https']}/fhir", timeout=5, **_tls(sandbox))
    try:
        for payload in (
            sample_payload(patient=None, patient_pseudonym=pseudonym),
            sample_payload(patient=sample_patient(identity_verified=True), patient_pseudonym=pseudonym),
        ):
            reply = transport.exchange(fhir.render_bundle(payload), content_type="application/fhir+json")
            assert reply.status == 200, reply.body
    finally:
        transport.close()
    key = f"{fhir.systems().pseudonym}|{pseudonym}"
    history = sandbox.control(f"/control/fhir-resources?type=Patient&identifier={key.replace('|', '%7C')}")
    assert [r["meta"]["versionId"] for r in history] == ["1", "2"]
    assert "name" not in history[0] and history[1]["name"][0]["family"] == "DURAND-TESTEUR"
    assert history[1]["extension"][0]["extension"][0]["valueCoding"]["code"] == "VALI"
