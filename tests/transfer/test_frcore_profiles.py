"""Issue 16: the FHIR Patient and Organization follow FR Core (Interop'Santé, https://hl7.fr/ig/fhir/core).

Patient: meta.profile fr-core-patient; the NIR as INS-NIR (type from fr-core-cs-v2-0203, system
urn:oid:1.2.250.1.213.1.4.8, use official); the identity-reliability extension with identityStatus VALI when the
pharmacist recorded that the identity was checked on an identity document, PROV otherwise, never QUAL (no INSi call).
Organization: meta.profile fr-core-organization; the FINESS as idNatSt ("1" + FINESS under urn:oid:1.2.250.1.71.4.2.2,
type IDNST, the conditional update key) and as FINEG (bare FINESS, https://finess.esante.gouv.fr).
Practitioner (the pharmacist who recorded the version): meta.profile fr-core-practitioner; with an RPPS, the idNatPs
slice ("8" + RPPS under urn:oid:1.2.250.1.71.4.2.1, type IDNPS), without, the staff account id under the Relais
namespace (type INTRN); absent when the account is gone; first in Observation/DiagnosticReport.performer, before the Organization."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relais.transfer.formats import fhir
from relais.transfer.identifiers import namespace
from relais.transfer.payload import TransferPayload, UnmappableValue
from tests.transfer.payload_factory import sample_patient, sample_payload, sample_result
from tests.transfer.test_fhir_updates import valid

FR_CORE = "https://hl7.fr/ig/fhir/core"
FR_TYPE = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0203"
RELIABILITY = f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability"
STATUS_SYSTEM = f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status"


def entry(payload: TransferPayload, kind: str) -> dict[str, Any]:
    data = json.loads(fhir.render_bundle(payload))
    valid(data)
    (found,) = [e for e in data["entry"] if e["resource"]["resourceType"] == kind]
    return found


def identity_status(patient: dict[str, Any]) -> list[str]:
    codes = []
    for extension in patient.get("extension") or []:
        if extension["url"] == RELIABILITY:
            for part in extension["extension"]:
                if part["url"] == "identityStatus":
                    assert part["valueCoding"]["system"] == STATUS_SYSTEM
                    codes.append(part["valueCoding"]["code"])
    return codes


def test_patient_declares_fr_core_patient() -> None:
    for payload in (sample_payload(), sample_payload(patient=None)):
        patient = entry(payload, "Patient")["resource"]
        assert patient["meta"]["profile"] == [f"{FR_CORE}/StructureDefinition/fr-core-patient"]


def test_the_nir_is_an_ins_nir_identifier() -> None:
    patient = entry(sample_payload(), "Patient")["resource"]
    (ins,) = [i for i in patient["identifier"] if i["system"] == "urn:oid:1.2.250.1.213.1.4.8"]
    assert ins == {
        "use": "official",
        "type": {"coding": [{"system": FR_TYPE, "code": "INS-NIR"}]},
        "system": "urn:oid:1.2.250.1.213.1.4.8",
        "value": "294037512000591",
    }
    without = entry(sample_payload(patient=sample_patient(nir="")), "Patient")["resource"]
    assert all(i["system"] != "urn:oid:1.2.250.1.213.1.4.8" for i in without["identifier"])


@pytest.mark.parametrize(("verified", "code"), [(True, "VALI"), (False, "PROV"), (None, "PROV")])
def test_identity_reliability_says_what_the_pharmacist_checked(verified: bool | None, code: str) -> None:
    patient = entry(sample_payload(patient=sample_patient(identity_verified=verified)), "Patient")["resource"]
    assert identity_status(patient) == [code]
    assert "QUAL" not in json.dumps(patient) and "RECUP" not in json.dumps(patient)


def test_an_anonymous_patient_carries_no_identity_and_no_reliability() -> None:
    patient = entry(sample_payload(patient=None, identity_verified=True), "Patient")["resource"]
    assert identity_status(patient) == [] and "extension" not in patient
    assert [i["system"] for i in patient["identifier"]] == [fhir.systems().pseudonym]


def test_organization_declares_fr_core_organization_with_the_finess_as_fr_core_wants_it() -> None:
    found = entry(sample_payload(pharmacy_finess="750000010"), "Organization")
    organization = found["resource"]
    assert organization["meta"]["profile"] == [f"{FR_CORE}/StructureDefinition/fr-core-organization"]
    by_system = {i["system"]: i for i in organization["identifier"]}
    assert by_system["urn:oid:1.2.250.1.71.4.2.2"] == {
        "use": "official",
        "type": {"coding": [{"system": FR_TYPE, "code": "IDNST"}]},
        "system": "urn:oid:1.2.250.1.71.4.2.2",
        "value": "1750000010",  # "1" + FINESS: idNatSt
    }
    assert by_system["https://finess.esante.gouv.fr"] == {
        "type": {"coding": [{"system": FR_TYPE, "code": "FINEG"}]},
        "system": "https://finess.esante.gouv.fr",
        "value": "750000010",
    }
    assert found["request"] == {"method": "PUT", "url": "Organization?identifier=urn:oid:1.2.250.1.71.4.2.2|1750000010"}


def test_organization_telecom_is_the_pharmacy_phone_as_a_work_phone_only_when_it_has_one() -> None:
    organization = entry(sample_payload(pharmacy_phone="+33142345678"), "Organization")["resource"]
    assert organization["telecom"] == [{"system": "phone", "value": "+33142345678", "use": "work"}]
    assert list(organization).index("telecom") == list(organization).index("name") + 1  # R4 element order: name, telecom, address
    without = entry(sample_payload(pharmacy_phone=""), "Organization")["resource"]
    assert "telecom" not in without  # never an empty element nor an invented number
    assert entry(sample_payload(), "Organization")["resource"].get("telecom") is None


# --- Practitioner: the pharmacist who recorded the version (as HL7 ORC-12/OBR-16) ----------------------------------

RPPS_OID_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
RECORDER = {"recorder_rpps": "10001234567", "recorder_family": "MARTIN", "recorder_given": "Léa", "recorder_id": "42"}


def kinds(payload: TransferPayload) -> list[str]:
    return [e["resource"]["resourceType"] for e in json.loads(fhir.render_bundle(payload))["entry"]]


def test_practitioner_declares_fr_core_practitioner() -> None:
    for recorder in (RECORDER, {**RECORDER, "recorder_rpps": ""}):
        practitioner = entry(sample_payload(**recorder), "Practitioner")["resource"]
        assert practitioner["meta"]["profile"] == [f"{FR_CORE}/StructureDefinition/fr-core-practitioner"]


def test_practitioner_with_an_rpps_is_identified_by_its_idnatps() -> None:
    found = entry(sample_payload(**RECORDER), "Practitioner")
    practitioner = found["resource"]
    assert practitioner["identifier"] == [
        {
            "use": "official",
            "type": {"coding": [{"system": FR_TYPE, "code": "IDNPS"}]},
            "system": RPPS_OID_SYSTEM,
            "value": "810001234567",  # "8" + RPPS: IdNat_PS
        }
    ]
    assert practitioner["name"] == [{"family": "MARTIN", "given": ["Léa"]}]
    assert found["request"] == {"method": "PUT", "url": f"Practitioner?identifier={RPPS_OID_SYSTEM}|810001234567"}
    assert "42" not in json.dumps(practitioner)  # the account id is not sent when the RPPS identifies the pharmacist


def test_practitioner_without_rpps_is_identified_by_the_staff_account_under_the_relais_namespace() -> None:
    found = entry(sample_payload(**{**RECORDER, "recorder_rpps": "", "recorder_family": ""}), "Practitioner")
    staff = namespace("staff").system
    assert found["resource"]["identifier"] == [{"type": {"coding": [{"system": FR_TYPE, "code": "INTRN"}]}, "system": staff, "value": "42"}]
    assert found["resource"]["name"] == [{"given": ["Léa"]}]  # only what is known
    assert found["request"] == {"method": "PUT", "url": f"Practitioner?identifier={staff}|42"}
    nameless = entry(sample_payload(recorder_id="42"), "Practitioner")["resource"]
    assert "name" not in nameless  # never an empty element nor an invented name


def test_no_practitioner_when_the_account_is_gone() -> None:
    gone = sample_payload(recorder_family="MARTIN", recorder_given="Léa")  # no RPPS, no account id
    assert "Practitioner" not in kinds(gone)
    data = json.loads(fhir.render_bundle(gone))
    valid(data)
    for found in data["entry"]:
        if found["resource"]["resourceType"] in ("Observation", "DiagnosticReport"):
            assert [p["reference"] for p in found["resource"]["performer"]] == [data["entry"][0]["fullUrl"]]  # the Organization


def test_performer_lists_the_practitioner_then_the_organization() -> None:
    payload = sample_payload(**RECORDER, results=(sample_result(), sample_result(analyte="rsv", loinc_code="72885-7")))
    data = json.loads(fhir.render_bundle(payload))
    valid(data)
    url = {e["resource"]["resourceType"]: e["fullUrl"] for e in data["entry"]}
    performers = [e["resource"]["performer"] for e in data["entry"] if e["resource"]["resourceType"] in ("Observation", "DiagnosticReport")]
    assert len(performers) == 3
    for performer in performers:
        assert performer == [{"reference": url["Practitioner"]}, {"reference": url["Organization"]}]


def test_a_malformed_rpps_is_refused_not_sent() -> None:
    with pytest.raises(UnmappableValue, match="recorder_rpps"):
        fhir.render_bundle(sample_payload(**{**RECORDER, "recorder_rpps": "1234"}))
