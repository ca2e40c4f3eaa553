"""Issue 16: the FHIR Patient and Organization follow FR Core (Interop'Santé, https://hl7.fr/ig/fhir/core).

Patient: meta.profile fr-core-patient; the NIR as INS-NIR (type from fr-core-cs-v2-0203, system
urn:oid:1.2.250.1.213.1.4.8, use official); the identity-reliability extension with identityStatus VALI when the
pharmacist recorded that the identity was checked on an identity document, PROV otherwise, never QUAL (no INSi call).
Organization: meta.profile fr-core-organization; the FINESS as idNatSt ("1" + FINESS under urn:oid:1.2.250.1.71.4.2.2,
type IDNST, the conditional update key) and as FINEG (bare FINESS, https://finess.esante.gouv.fr)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relais.transfer.formats import fhir
from relais.transfer.payload import TransferPayload
from tests.transfer.payload_factory import sample_patient, sample_payload
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
