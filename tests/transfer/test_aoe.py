"""Issue 15 items 3 and 5 on the wire: symptoms and onset as ask-at-order-entry observations and the kit's lot and
expiry, in HL7 v2.5.1 (read back with hl7apy) and FHIR R4 (fhir.resources and the official R4 JSON schema), and the
sandbox's checks of them. The delivery through the running sandbox is in tests/transfer/test_delivery.py."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from relais.intake.services import screening_correct, screening_record
from relais.screenings.vocab import RESULT_DETECTED
from relais.transfer.delivery import _load_screenings, build_payload
from relais.transfer.formats import fhir, hl7v2
from relais.transfer.models import OutboxMessage
from relais.transfer.payload import TransferPayload, UnmappableValue
from sandbox import fhir as sandbox_fhir
from sandbox import hl7 as sandbox_hl7
from tests.factories import screening_input
from tests.transfer.payload_factory import sample_payload, sample_result
from tests.transfer.test_renderer_proof import schema_errors

ONSET = date(2024, 2, 27)
EXPIRY = date(2025, 6, 30)


def _full(**overrides: Any) -> TransferPayload:
    values: dict[str, Any] = {"symptoms": "yes", "symptom_onset": ONSET, "kit_lot": "AB12/3-x&|^", "kit_expiry": EXPIRY}
    values.update(overrides)
    return sample_payload(**values)


def _observations(text: str) -> list[dict[str, str]]:
    """Every OBX of the message as hl7apy reads it (STRICT, validated): value type, code, coding system, value, status."""
    hl7v2.validate_message(text)
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    rows = []
    for observation in message.oru_r01_patient_result.oru_r01_order_observation.oru_r01_observation:
        obx = observation.obx
        rows.append(
            {
                "set_id": obx.obx_1.value,
                "type": obx.obx_2.value,
                "code": obx.obx_3.obx_3_1.value,
                "system": obx.obx_3.obx_3_3.value,
                "value": obx.obx_5.to_er7(),
                "status": obx.obx_11.value,
            }
        )
    return rows


# --- HL7 v2.5.1 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("symptoms", "answer"), [("yes", "Y^Yes^HL70136"), ("no", "N^No^HL70136"), ("unknown", "UNK^Unknown^NULLFL")])
def test_hl7_symptoms_answer_follows_the_result(symptoms: str, answer: str) -> None:
    rows = _observations(hl7v2.render_oru_r01(sample_payload(symptoms=symptoms)))
    assert [(r["code"], r["system"]) for r in rows] == [("94558-4", "LN"), ("95419-8", "LN")]
    assert (rows[1]["type"], rows[1]["value"], rows[1]["set_id"]) == ("CWE", answer, "2")


def test_hl7_every_observation_with_its_code_and_value() -> None:
    text = hl7v2.render_oru_r01(_full())
    rows = _observations(text)
    assert [(r["type"], r["code"], r["system"], r["value"]) for r in rows[1:]] == [
        ("CWE", "95419-8", "LN", "Y^Yes^HL70136"),
        ("DT", "65222-2", "LN", "20240227"),
        ("ST", "10", "99GS1", "AB12/3-x\\T\\\\F\\\\S\\"),  # escaped in ER7, the lot read back as typed
        ("DT", "17", "99GS1", "20250630"),
    ]
    assert [r["set_id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert hl7v2.unescape(rows[3]["value"]) == "AB12/3-x&|^"
    assert text.split("\r")[-1].startswith("SPM|")  # the specimen still closes the order


def test_hl7_nothing_is_added_when_nothing_was_recorded() -> None:
    payload = sample_payload()
    text = hl7v2.render_oru_r01(payload)
    assert [r["code"] for r in _observations(text)] == ["94558-4"]
    assert "95419-8" not in text and "99GS1" not in text


def test_hl7_onset_only_when_given_and_lot_or_expiry_alone() -> None:
    codes = [r["code"] for r in _observations(hl7v2.render_oru_r01(sample_payload(symptoms="yes")))]
    assert codes == ["94558-4", "95419-8"]
    codes = [r["code"] for r in _observations(hl7v2.render_oru_r01(sample_payload(kit_expiry=EXPIRY)))]
    assert codes == ["94558-4", "17"]
    codes = [r["code"] for r in _observations(hl7v2.render_oru_r01(sample_payload(kit_lot="L1")))]
    assert codes == ["94558-4", "10"]


def test_hl7_multiplex_results_come_first() -> None:
    payload = _full(results=(sample_result(), sample_result(analyte="rsv", loinc_code="72885-7")))
    rows = _observations(hl7v2.render_oru_r01(payload))
    assert [r["code"] for r in rows] == ["94558-4", "72885-7", "95419-8", "65222-2", "10", "17"]


@pytest.mark.parametrize(("status", "code"), [("final", "F"), ("corrected", "C"), ("removed", "D")])
def test_hl7_corrections_and_removals_carry_the_observations(status: str, code: str) -> None:
    payload = _full(status=status)
    text = hl7v2.render_oru_r01(payload)
    rows = _observations(text)
    assert len(rows) == 5 and {r["status"] for r in rows} == {code}
    checked = sandbox_hl7.check_message(text, full=True)
    assert checked.problem is None, checked.problem
    assert checked.result_status == code


def test_hl7_an_onset_without_symptoms_is_never_sent() -> None:
    with pytest.raises(UnmappableValue) as caught:
        hl7v2.render_oru_r01(sample_payload(symptoms="no", symptom_onset=ONSET))
    assert caught.value.field == "symptom_onset"
    with pytest.raises(UnmappableValue):
        hl7v2.render_oru_r01(sample_payload(symptoms="maybe"))


def test_hl7_structure_check_counts_the_observations() -> None:
    payload = _full()
    segments = hl7v2.render_oru_r01(payload).split("\r")
    assert hl7v2.observation_count(payload) == 5
    assert hl7v2.segment_order(5) == [s[:3] for s in segments]
    hl7v2.check_structure(segments, control_id=payload.message_id, results=5)
    with pytest.raises(hl7v2.RenderError):
        hl7v2.check_structure(segments, control_id=payload.message_id, results=1)
    broken = [s.replace("|F|||", "|X|||") if s.startswith("OBX|4") else s for s in segments]
    with pytest.raises(hl7v2.RenderError):
        hl7v2.check_structure(broken, control_id=payload.message_id, results=5)


@pytest.mark.parametrize("full", [True, False])
def test_sandbox_reads_the_hl7_observations(full: bool) -> None:
    checked = sandbox_hl7.check_message(hl7v2.render_oru_r01(_full()), full=full)
    assert checked.problem is None, checked.problem
    assert checked.observations == (("95419-8", "Y"), ("65222-2", "20240227"), ("10", "AB12/3-x&|^"), ("17", "20250630"))


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("Y^Yes^HL70136", "Z^Yes^HL70136", "takes Y or N"),
        ("|DT|65222-2", "|ST|65222-2", "value type DT"),
        ("||20250630|", "||2025-06-30|", "not an HL7 date"),
        ("Y^Yes^HL70136", "N^No^HL70136", "onset without"),
    ],
)
@pytest.mark.parametrize("full", [True, False])
def test_sandbox_refuses_malformed_hl7_observations(old: str, new: str, fragment: str, full: bool) -> None:
    text = hl7v2.render_oru_r01(_full())
    assert old in text
    checked = sandbox_hl7.check_message(text.replace(old, new), full=full)
    assert checked.problem is not None and fragment in checked.problem.reason, checked.problem


def test_sandbox_refuses_a_message_with_answers_but_no_result() -> None:
    segments = hl7v2.render_oru_r01(_full()).split("\r")
    without_result = [s for s in segments if not s.startswith("OBX|1|")]
    checked = sandbox_hl7.check_message("\r".join(without_result), full=False)
    assert checked.problem is not None and "no OBX result" in checked.problem.reason


# --- FHIR R4 --------------------------------------------------------------------------------------------------------


def _bundle(payload: TransferPayload) -> dict[str, Any]:
    text = fhir.render_bundle(payload)
    Bundle.model_validate_json(text)  # fhir.resources (R4B models)
    bundle = json.loads(text)
    assert schema_errors(bundle) == []  # the official R4 JSON schema
    return bundle


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _by_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


@pytest.mark.parametrize(
    ("symptoms", "system", "code"),
    [
        ("yes", "http://terminology.hl7.org/CodeSystem/v2-0136", "Y"),
        ("no", "http://terminology.hl7.org/CodeSystem/v2-0136", "N"),
        ("unknown", "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "UNK"),
    ],
)
def test_fhir_symptoms_observation(symptoms: str, system: str, code: str) -> None:
    bundle = _bundle(sample_payload(symptoms=symptoms))
    survey = [o for o in _resources(bundle, "Observation") if o["category"][0]["coding"][0]["code"] == "survey"]
    assert len(survey) == 1
    assert survey[0]["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "95419-8",
        "display": "Has symptoms related to condition of interest",
    }
    assert survey[0]["valueCodeableConcept"]["coding"][0]["system"] == system
    assert survey[0]["valueCodeableConcept"]["coding"][0]["code"] == code


def test_fhir_every_answer_hangs_off_the_service_request_and_the_kit_is_a_device() -> None:
    bundle = _bundle(_full(status="corrected"))
    resources = _by_url(bundle)
    (request,) = _resources(bundle, "ServiceRequest")
    answers = [resources[ref["reference"]] for ref in request["supportingInfo"]]
    assert [a["code"]["coding"][0]["code"] for a in answers] == ["95419-8", "65222-2"]
    assert answers[1]["valueDateTime"] == "2024-02-27"
    assert {a["status"] for a in answers} == {"corrected"}
    (report,) = _resources(bundle, "DiagnosticReport")
    assert resources[report["basedOn"][0]["reference"]] is request
    results = [resources[ref["reference"]] for ref in report["result"]]
    assert [r["code"]["coding"][0]["code"] for r in results] == ["94558-4"]  # the answers are not results
    (device,) = _resources(bundle, "Device")
    assert (device["lotNumber"], device["expirationDate"]) == ("AB12/3-x&|^", "2025-06-30")
    kit_system = fhir.systems().device
    kit = [i for i in device["identifier"] if i["system"] == kit_system]
    assert kit == [{"system": kit_system, "value": "1232:2025-06-30:AB12/3-x&|^"}]
    device_entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Device")
    assert device_entry["request"]["ifNoneExist"].startswith(f"identifier={kit_system}|")


def test_fhir_nothing_is_added_when_nothing_was_recorded() -> None:
    bundle = _bundle(sample_payload())
    assert not _resources(bundle, "ServiceRequest")
    assert len(_resources(bundle, "Observation")) == 1
    (device,) = _resources(bundle, "Device")
    assert "lotNumber" not in device and "expirationDate" not in device
    assert "basedOn" not in _resources(bundle, "DiagnosticReport")[0]


def test_fhir_removed_and_pseudonymous_versions_stay_valid() -> None:
    for payload in (_full(status="removed"), _full(patient=None), _full(symptoms="unknown", symptom_onset=None, kit_lot="")):
        bundle = _bundle(payload)
        assert schema_errors(bundle, whole=True) == []
        assert sandbox_fhir.check_bundle(json.dumps(bundle).encode(), full=True).problem == ""


def test_fhir_an_onset_without_symptoms_is_never_sent() -> None:
    with pytest.raises(UnmappableValue):
        fhir.render_bundle(sample_payload(symptoms="no", symptom_onset=ONSET))


def test_fhir_structure_check_refuses_a_dangling_supporting_info() -> None:
    bundle = fhir.bundle_dict(_full())
    fhir.check_structure(bundle)
    request = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    request["supportingInfo"].append({"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"})
    with pytest.raises(hl7v2.RenderError):
        fhir.check_structure(bundle)


@pytest.mark.parametrize("full", [True, False])
def test_sandbox_reads_the_fhir_answers_and_kit(full: bool) -> None:
    checked = sandbox_fhir.check_bundle(fhir.render_bundle(_full()).encode(), full=full)
    assert checked.problem == "", checked.problem
    assert checked.observations == (
        ("95419-8", "Y"),
        ("65222-2", "2024-02-27"),
        ("lotNumber", "AB12/3-x&|^"),
        ("expirationDate", "2025-06-30"),
    )
    assert "ServiceRequest" in checked.entries


@pytest.mark.parametrize("full", [True, False])
def test_sandbox_refuses_malformed_fhir_answers(full: bool) -> None:
    text = fhir.render_bundle(_full())
    checked = sandbox_fhir.check_bundle(text.replace('"code":"Y"', '"code":"X"').encode(), full=full)
    assert "takes Y or N" in checked.problem
    no_symptoms = text.replace('"code":"Y","display":"Yes"', '"code":"N","display":"No"')
    assert no_symptoms != text
    assert "onset" in sandbox_fhir.check_bundle(no_symptoms.encode(), full=full).problem


# --- from the database: what build_payload reads (also in a worker's batch load) -------------------------------------


@pytest.mark.parametrize("remove", [False, True])
def test_corrections_and_removals_send_the_answers_and_kit_again(owner: Any, patient: Any, remove: bool) -> None:
    today = timezone.localdate()
    onset, expiry = today - timedelta(days=1), today + timedelta(days=30)
    data = screening_input(symptoms="yes", symptom_onset=onset, kit_lot="K-7", kit_expiry=expiry)
    original = screening_record(actor=owner, patient_id=patient.pk, data=data)
    results = None if remove else {"sars-cov-2": RESULT_DETECTED}
    version = screening_correct(actor=owner, screening_id=original.pk, reason="typo", results=results, remove=remove)
    message = OutboxMessage.objects.get(screening_id=version.pk)
    loaded, loaded_results = _load_screenings([version.pk])  # the worker's load: only the fields it names
    assert not {"symptoms", "symptom_onset", "kit_lot", "kit_expiry"} & loaded[version.pk].get_deferred_fields()  # no query each
    payload = build_payload(message, loaded[version.pk], results=loaded_results[version.pk])
    assert (payload.symptoms, payload.symptom_onset, payload.kit_lot, payload.kit_expiry) == ("yes", onset, "K-7", expiry)
    rows = _observations(hl7v2.render_oru_r01(payload))
    assert [r["code"] for r in rows] == ["94558-4", "95419-8", "65222-2", "10", "17"]
    assert {r["status"] for r in rows} == {"D" if remove else "C"}
