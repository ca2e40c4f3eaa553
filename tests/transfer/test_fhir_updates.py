"""Issue 16: FHIR corrections are updates. Every version of one test writes the same resources (identifiers from the
series id), by conditional update, with status final -> corrected -> entered-in-error; the Patient too, so identity
that arrives later replaces the anonymous record. The sandbox keeps one current resource per identifier with its
versions and one record per test, and refuses a correction that matches no original.

Every bundle shape is checked against the official FHIR R4 JSON schema (tests/data/fhir/) and fhir.resources."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.test import override_settings
from fhir.resources.R4B.bundle import Bundle

from relais.transfer.formats import fhir
from relais.transfer.formats.hl7v2 import RenderError
from relais.transfer.payload import TransferPayload
from sandbox import fhir as sandbox_fhir
from sandbox.modes import Mode
from sandbox.service import Platform
from sandbox.store import Store
from tests.transfer.payload_factory import sample_patient, sample_payload, sample_result
from tests.transfer.test_renderer_proof import schema_errors

ROOT = Path(__file__).resolve().parents[2]
VERSIONED = ("Specimen", "Observation", "DiagnosticReport", "ServiceRequest")
RECORDER = {"recorder_rpps": "10001234567", "recorder_family": "MARTIN", "recorder_given": "Léa", "recorder_id": "42"}


def versions(**common: Any) -> list[TransferPayload]:
    """One test recorded, corrected, then removed: three versions, one series id, three version ids and message ids."""
    series = uuid.uuid4()
    return [
        sample_payload(series_id=series, version=n, status=status, **common)
        for n, status in enumerate(("final", "corrected", "removed"), start=1)
    ]


def bundle(payload: TransferPayload) -> dict[str, Any]:
    return json.loads(fhir.render_bundle(payload))


def by_type(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [entry for entry in data["entry"] if entry["resource"]["resourceType"] == kind]


def valid(data: dict[str, Any]) -> None:
    """fhir.resources and the official R4 JSON schema (each resource, and the Bundle as one document)."""
    Bundle.model_validate(data)
    assert schema_errors(data) == []
    assert schema_errors(data, whole=True) == []


# --- the renderer --------------------------------------------------------------------------------------------------


def test_every_version_of_a_test_writes_the_same_resources_by_conditional_update() -> None:
    aoe = {"symptoms": "yes", "symptom_onset": sample_payload().sampled_at.date() - timedelta(days=1), "kit_lot": "L1", **RECORDER}
    bundles = [bundle(p) for p in versions(**aoe)]
    requests = [[(e["resource"]["resourceType"], e["request"]["method"], e["request"]["url"]) for e in b["entry"]] for b in bundles]
    assert requests[0] == requests[1] == requests[2]  # the same resources, written the same way
    identifiers = [[e["resource"].get("identifier") for e in b["entry"]] for b in bundles]
    assert identifiers[0] == identifiers[1] == identifiers[2]
    assert len({b["identifier"]["value"] for b in bundles}) == 3  # one message id per version
    for payload, data in zip(versions(), [bundle(p) for p in versions()], strict=True):
        assert str(payload.screening_id) not in json.dumps(data)  # nothing keyed on the version's id


@pytest.mark.parametrize(
    ("aoe", "recorder"),
    [(False, {}), (True, {}), (False, RECORDER), (True, {**RECORDER, "recorder_rpps": ""})],
    ids=["plain", "aoe", "practitioner-rpps", "aoe-practitioner-staff-id"],
)
def test_every_entry_but_the_device_is_a_conditional_update_on_an_identifier_it_carries(aoe: bool, recorder: dict[str, str]) -> None:
    extra = {"symptoms": "no"} if aoe else {}
    payload = sample_payload(**extra, **recorder)
    data = bundle(payload)
    series = str(payload.series_id)
    for entry in data["entry"]:
        kind, request, resource = entry["resource"]["resourceType"], entry["request"], entry["resource"]
        if kind == "Device":
            assert request["method"] == "POST" and "ifNoneExist" in request
            continue
        assert request["method"] == "PUT" and "ifNoneExist" not in request
        key = sandbox_fhir.parse_conditional(request["url"], kind)
        assert key is not None, request
        system, _, value = key.partition("|")
        assert {"system": system, "value": value} in [{"system": i["system"], "value": i["value"]} for i in resource["identifier"]]
        if kind in VERSIONED:
            assert value.startswith(series)  # derived from the series id
    kinds = [e["resource"]["resourceType"] for e in data["entry"]]
    assert ("ServiceRequest" in kinds) is aoe
    assert ("Practitioner" in kinds) is bool(recorder)
    valid(data)


def test_statuses_final_corrected_entered_in_error() -> None:
    first, corrected, removed = (bundle(p) for p in versions(results=(sample_result(), sample_result(analyte="rsv", loinc_code="72885-7"))))
    for data, status in ((first, "final"), (corrected, "corrected"), (removed, "entered-in-error")):
        assert {e["resource"]["status"] for e in by_type(data, "Observation")} == {status}
        assert [e["resource"]["status"] for e in by_type(data, "DiagnosticReport")] == [status]
        valid(data)
    assert [e["resource"].get("status") for e in by_type(removed, "Specimen")] == ["entered-in-error"]
    assert [e["resource"].get("status") for e in by_type(first, "Specimen")] == [None]


def test_the_patient_is_a_conditional_update_on_its_pseudonym_with_or_without_identity() -> None:
    anonymous = bundle(sample_payload(patient=None))
    identified = bundle(sample_payload())
    (before,), (after,) = by_type(anonymous, "Patient"), by_type(identified, "Patient")
    assert before["request"] == after["request"]
    assert before["request"]["method"] == "PUT"
    assert before["request"]["url"] == f"Patient?identifier={fhir.systems().pseudonym}|5f1c0e2a9b7d4c3e8a6f0b1d2c3e4f5a"
    assert "name" not in before["resource"] and after["resource"]["name"][0]["family"] == "DURAND-TESTEUR"
    valid(anonymous)
    valid(identified)


def test_the_structural_check_refuses_a_create_where_an_update_belongs() -> None:
    good = fhir.bundle_dict(sample_payload())
    fhir.check_structure(good)
    for index, request in (
        (4, {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=x|y"}),  # the Observation created again
        (1, {"method": "PUT", "url": "Patient"}),  # an update with no condition
        (5, {"method": "PUT", "url": "Observation?identifier=x|y"}),  # the report written as another type
    ):
        broken = json.loads(json.dumps(good))
        broken["entry"][index]["request"] = request
        with pytest.raises(RenderError):
            fhir.check_structure(broken)
    with_practitioner = fhir.bundle_dict(sample_payload(**RECORDER))
    fhir.check_structure(with_practitioner)
    for request in ({"method": "POST", "url": "Practitioner", "ifNoneExist": "identifier=x|y"}, {"method": "PUT", "url": "Practitioner"}):
        broken = json.loads(json.dumps(with_practitioner))
        broken["entry"][1]["request"] = request  # the Practitioner
        with pytest.raises(RenderError):
            fhir.check_structure(broken)


def test_identifier_systems_come_from_the_relais_namespace() -> None:
    text = fhir.render_bundle(sample_payload())
    assert "relais.example" not in text
    for path in ("relais/transfer/formats/fhir.py", "sandbox/fhir.py", "sandbox/service.py", "sandbox/server.py"):
        assert "relais.example" not in (ROOT / path).read_text(encoding="utf-8"), path
    with override_settings(RELAIS_ID_NAMESPACE_URL="https://ids.pharmacie-test.fr/relais"):
        data = bundle(sample_payload())
    assert data["identifier"]["system"] == "https://ids.pharmacie-test.fr/relais/message"
    (report,) = by_type(data, "DiagnosticReport")
    assert report["request"]["url"].startswith("DiagnosticReport?identifier=https://ids.pharmacie-test.fr/relais/order|")
    valid(data)


# --- the sandbox, in process ---------------------------------------------------------------------------------------


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    store = Store(tmp_path)
    yield Platform(store)
    store.close()


def send(platform: Platform, payload: TransferPayload) -> tuple[int, dict[str, Any]]:
    reply = platform.receive_fhir(fhir.render_bundle(payload).encode(), "https", Mode())
    return reply.status, json.loads(reply.body)


def report_key(payload: TransferPayload) -> str:
    return f"{fhir.systems().order}|{payload.series_id}"


def test_sandbox_recorded_corrected_removed_is_one_record_with_three_versions(platform: Platform) -> None:
    first, corrected, removed = versions()
    answers = [send(platform, p) for p in (first, corrected, removed)]
    assert [status for status, _ in answers] == [200, 200, 200]
    (report_index,) = [i for i, e in enumerate(bundle(first)["entry"]) if e["resource"]["resourceType"] == "DiagnosticReport"]
    report_answers = [answer["entry"][report_index]["response"] for _, answer in answers]
    assert [r["status"] for r in report_answers] == ["201 Created", "200 OK", "200 OK"]
    assert [r["etag"] for r in report_answers] == ['W/"1"', 'W/"2"', 'W/"3"']
    assert len({r["location"].split("/")[1] for r in report_answers}) == 1  # one resource, three versions

    [record] = platform.store.records(format="fhir")
    assert (record["test_key"], record["status"], record["versions"]) == (report_key(first), "removed", 3)
    history = platform.store.history(report_key(first), format="fhir")
    assert [(v.version_status, v.message_id) for v in history] == [
        ("final", first.message_id),
        ("corrected", corrected.message_id),
        ("removed", removed.message_id),
    ]
    observation_key = f"{fhir.systems().observation}|{first.series_id}/sars-cov-2"
    kept = platform.resources.history("Observation", observation_key)
    assert [(o["meta"]["versionId"], o["status"]) for o in kept] == [("1", "final"), ("2", "corrected"), ("3", "entered-in-error")]
    current = platform.resources.current("DiagnosticReport", report_key(first))
    assert current is not None and current["status"] == "entered-in-error" and current["meta"]["versionId"] == "3"
    summary = platform.resources.summary()
    assert len([r for r in summary if r["resourceType"] == "Observation"]) == 1


def test_sandbox_a_retried_version_adds_nothing(platform: Platform) -> None:
    first, corrected, _ = versions()
    send(platform, first)
    one = send(platform, corrected)
    again = send(platform, corrected)  # the same message id: a retry
    assert one == again
    assert platform.store.records(format="fhir")[0]["versions"] == 2
    assert len(platform.resources.history("DiagnosticReport", report_key(first))) == 2


@pytest.mark.parametrize("status", ["corrected", "removed"])
def test_sandbox_refuses_a_correction_that_matches_no_original(platform: Platform, status: str) -> None:
    orphan = sample_payload(status=status)
    code, answer = send(platform, orphan)
    assert code == 422 and answer["resourceType"] == "OperationOutcome"
    assert "matches no original" in answer["issue"][0]["diagnostics"]
    assert platform.store.records() == [] and platform.resources.summary() == []
    assert platform.store.messages() == [] and platform.store.stats()["rejected"] == 1


def test_sandbox_late_identity_replaces_the_anonymous_patient(platform: Platform) -> None:
    anonymous = sample_payload(patient=None)
    identified = sample_payload(patient=sample_patient(identity_verified=True))
    assert send(platform, anonymous)[0] == 200 and send(platform, identified)[0] == 200
    patients = [r for r in platform.resources.summary() if r["resourceType"] == "Patient"]
    assert len(patients) == 1 and patients[0]["versions"] == 2
    current = platform.resources.current("Patient", patients[0]["identifier"])
    assert current is not None and current["name"][0]["family"] == "DURAND-TESTEUR"
    assert current["extension"][0]["extension"][0]["valueCoding"]["code"] == "VALI"


def test_sandbox_an_unchanged_patient_or_organization_gets_no_new_version(platform: Platform) -> None:
    first, second = sample_payload(), sample_payload()  # two tests of the same patient in the same pharmacy
    send(platform, first)
    _, answer = send(platform, second)
    statuses = {e["resource"]["resourceType"]: r["response"] for e, r in zip(bundle(second)["entry"], answer["entry"], strict=True)}
    assert (statuses["Patient"]["status"], statuses["Patient"]["etag"]) == ("200 OK", 'W/"1"')
    assert (statuses["Organization"]["status"], statuses["Organization"]["etag"]) == ("200 OK", 'W/"1"')
    assert statuses["DiagnosticReport"]["status"] == "201 Created"  # another test
    corrected = sample_patient(last_name="DURAND")
    send(platform, sample_payload(patient=corrected))  # an identity correction is a new version
    (patient,) = [r for r in platform.resources.summary() if r["resourceType"] == "Patient"]
    assert patient["versions"] == 2


def test_sandbox_refuses_an_update_written_under_an_identifier_the_resource_lacks() -> None:
    data = fhir.bundle_dict(sample_payload())
    index = next(i for i, e in enumerate(data["entry"]) if e["resource"]["resourceType"] == "Observation")
    data["entry"][index]["request"]["url"] = f"Observation?identifier={quote('urn:oid:1.2.3')}|other"
    checked = sandbox_fhir.check_bundle(json.dumps(data).encode())
    assert "does not carry the identifier" in checked.problem
    data = fhir.bundle_dict(sample_payload())
    data["entry"][index]["request"] = {"method": "DELETE", "url": "Observation?identifier=a|b"}
    assert "POST or PUT" in sandbox_fhir.check_bundle(json.dumps(data).encode()).problem


def test_sandbox_refuses_a_report_and_observations_that_disagree_on_the_status() -> None:
    data = fhir.bundle_dict(sample_payload(status="corrected"))
    for entry in data["entry"]:
        if entry["resource"]["resourceType"] == "DiagnosticReport":
            entry["resource"]["status"] = "entered-in-error"
    checked = sandbox_fhir.check_bundle(json.dumps(data).encode())
    assert "one version, one status" in checked.problem


def test_sandbox_reads_the_test_key_and_the_version_status() -> None:
    for payload, expected in zip(versions(), ("final", "corrected", "removed"), strict=True):
        checked = sandbox_fhir.check_bundle(fhir.render_bundle(payload).encode(), full=False)
        assert checked.problem == ""
        assert (checked.test_key, checked.version_status) == (report_key(payload), expected)
        assert checked.placer == checked.filler == str(payload.series_id)


def test_sandbox_keeps_one_practitioner_and_an_unchanged_one_gets_no_new_version(platform: Platform) -> None:
    first, corrected, _ = versions(**RECORDER)
    other_test = sample_payload(**RECORDER)  # the same pharmacist, another test
    answers = [send(platform, p) for p in (first, corrected, other_test)]
    assert [code for code, _ in answers] == [200, 200, 200]
    (index,) = [i for i, e in enumerate(bundle(first)["entry"]) if e["resource"]["resourceType"] == "Practitioner"]
    responses = [answer["entry"][index]["response"] for _, answer in answers]
    assert [(r["status"], r["etag"]) for r in responses] == [("201 Created", 'W/"1"'), ("200 OK", 'W/"1"'), ("200 OK", 'W/"1"')]
    (practitioner,) = [r for r in platform.resources.summary() if r["resourceType"] == "Practitioner"]
    assert practitioner["identifier"] == "urn:oid:1.2.250.1.71.4.2.1|810001234567" and practitioner["versions"] == 1
    renamed = sample_payload(**{**RECORDER, "recorder_family": "MARTIN-DURAND"})  # the account's name changed
    assert send(platform, renamed)[0] == 200
    kept = platform.resources.history("Practitioner", practitioner["identifier"])
    assert [(p["meta"]["versionId"], p["name"][0]["family"]) for p in kept] == [("1", "MARTIN"), ("2", "MARTIN-DURAND")]
    current = platform.resources.current("DiagnosticReport", report_key(first))
    assert current is not None and current["performer"][0] == {"reference": bundle(corrected)["entry"][index]["fullUrl"]}


@pytest.mark.parametrize("full", [True, False])
def test_sandbox_checks_accept_the_practitioner_and_refuse_a_broken_one(full: bool) -> None:
    data = fhir.bundle_dict(sample_payload(**RECORDER))
    assert data["entry"][1]["resource"]["resourceType"] == "Practitioner"
    checked = sandbox_fhir.check_bundle(json.dumps(data).encode(), full=full)
    assert checked.problem == "" and "Practitioner" in checked.entries
    anonymous = sandbox_fhir.check_bundle(fhir.render_bundle(sample_payload(patient=None, **RECORDER)).encode(), full=full)
    assert anonymous.problem == "" and anonymous.has_identity is False  # the pharmacist's name is not the patient's identity
    broken = json.loads(json.dumps(data))
    broken["entry"][1]["resource"]["name"] = {"family": "MARTIN"}  # a single value where R4 wants a list
    assert "Bundle.entry[1].resource.name" in sandbox_fhir.check_bundle(json.dumps(broken).encode(), full=full).problem
    broken = json.loads(json.dumps(data))
    broken["entry"][1]["request"]["url"] = "Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|899999999999"
    assert "does not carry the identifier" in sandbox_fhir.check_bundle(json.dumps(broken).encode(), full=full).problem
