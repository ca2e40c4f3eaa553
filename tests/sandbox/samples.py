"""Hand-written valid messages for the sandbox tests: an HL7 v2.5.1 ORU^R01 and a FHIR R4 transaction Bundle.

Written here, not produced by Relais: the sandbox is tested against the formats, independently of the sender.
The patient is fictitious (demo data: DURAND-TESTEUR Camille, pharmacy FINESS 750000010).
"""

from __future__ import annotations

import json
from typing import Any

SERIES = "5f0c2a3e-9b7d-4c1e-8a6f-2d4b7e9c1a30"  # same for every version of one test (placer)
SCREENING = "c3d9e1f2-7a4b-4e6c-9d8a-1b2c3d4e5f60"  # this version of the test (filler)
ROOT = "1.2.250.1.213.1.4.8.99"  # the sender's OID arc in these samples (application; .3 orders, .4 specimens)
ELR_PROFILE = "PHLabReport-NoAck^ELR251R1_Rcvr_Prof^2.16.840.1.113883.9.11^ISO"
LOINC_DISPLAY = "SARS-CoV-2 (COVID-19) Ag [Presence] in Respiratory specimen by Rapid immunoassay"


def hl7_oru(message_id: str, *, status: str = "F", anonymous: bool = False, loinc_system: str = "LN") -> str:
    """One ORU^R01 v2.5.1 for a SARS-CoV-2 rapid antigen test, segments separated by \\r."""
    name = "ANONYME^^^^^^S" if anonymous else "DURAND-TESTEUR^Camille^^^^^L"
    identity = "" if anonymous else "||1 rue du Test^^Paris^^75010^FRA^H||^PRN^PH^^^^^^^^^+33612345678~^NET^Internet^camille@example.org"
    nir = "" if anonymous else "~285057512345678^^^INSEE-NIR&1.2.250.1.213.1.4.8&ISO^NH"
    order_status = "F" if status == "F" else "C"  # OBR-25: a correction or removal corrects the order
    segments = [
        "MSH|^~\\&|RELAIS^1.2.250.1.213.1.4.8.99^ISO|PHARMACIE DE LA GARE^1.2.250.1.71.4.2.2.750000010^ISO"
        "|SIDEP^1.2.250.1.213.1.6.1.1^ISO|DGS^1.2.250.1.213.1.6.1^ISO|20240315103000+0100||ORU^R01^ORU_R01"
        f"|{message_id}|P|2.5.1|||AL|NE|FRA|UNICODE UTF-8|||{ELR_PROFILE}",
        f"SFT|Relais^^^^^RELAIS&{ROOT}&ISO^XX^^^{ROOT}|1.0|Relais|relais-1.0",
        f"PID|1||9f86d081884c7d659a2feaa0c55ad015^^^RELAIS&1.2.250.1.213.1.4.8.99&ISO^PI{nir}||{name}||19850512|F|{identity}",
        f"ORC|NW|{SERIES}^RELAIS^{ROOT}.3^ISO|{SCREENING}^RELAIS^{ROOT}.3^ISO||CM||||20240315102500+0100"
        "||||||||||||PHARMACIE DE LA GARE^^^^^FINESS&1.2.250.1.71.4.2.2&ISO^FINEG^^^750000010|12 place de la Gare^^Paris^^75010^FRA^B",
        f"OBR|1|{SERIES}^RELAIS^{ROOT}.3^ISO|{SCREENING}^RELAIS^{ROOT}.3^ISO|94558-4^{LOINC_DISPLAY}^LN|||20240315101000+0100|||||||||||||||20240315102500+0100|||{order_status}",
        f"OBX|1|CWE|94558-4^{LOINC_DISPLAY}^{loinc_system}"
        f"||260415000^Not detected^SCT||||||{status}|||20240315101000+0100||||1232^EU-DCC-DEVICE^1.2.250.1.213.1.4.8.99.1^ISO"
        "|20240315102000+0100||||PHARMACIE DE LA GARE^^^^^FINESS&1.2.250.1.71.4.2.2&ISO^FINEG^^^750000010"
        "|12 place de la Gare^^Paris^^75010^FRA^B",
        f"SPM|1|{SERIES}&RELAIS&{ROOT}.4&ISO^{SCREENING}&RELAIS&{ROOT}.4&ISO"
        "||258500001^Nasopharyngeal swab^SCT|||||||||||||20240315101000+0100|20240315101500+0100",
    ]
    return "\r".join(segments)


def hl7_batch(message_ids: list[str], *, batch_id: str = "BATCH0001") -> str:
    """FHS/BHS, one ORU^R01 per id, BTS/FTS."""
    header = (
        "|^~\\&|RELAIS^1.2.250.1.213.1.4.8.99^ISO|PHARMACIE DE LA GARE^1.2.250.1.71.4.2.2.750000010^ISO"
        "|SIDEP^1.2.250.1.213.1.6.1.1^ISO|DGS|20240315103000+0100"
    )
    segments = [f"FHS{header}||||F{batch_id}", f"BHS{header}||||{batch_id}"]
    segments += [hl7_oru(message_id) for message_id in message_ids]
    segments += [f"BTS|{len(message_ids)}", "FTS|1"]
    return "\r".join(segments)


def fhir_bundle_dict(message_id: str, *, status: str = "final", anonymous: bool = False) -> dict[str, Any]:
    """A FHIR R4 transaction Bundle: Patient, Observation, DiagnosticReport, Specimen, Device, Organization."""
    patient_url = "urn:uuid:0b6d2a1e-3c4f-4a5b-8c6d-7e8f9a0b1c2d"
    observation_url = "urn:uuid:1c7e3b2f-4d5a-4b6c-9d7e-8f9a0b1c2d3e"
    report_url = "urn:uuid:2d8f4c3a-5e6b-4c7d-8e8f-9a0b1c2d3e4f"
    specimen_url = "urn:uuid:3e9a5d4b-6f7c-4d8e-9f9a-0b1c2d3e4f5a"
    device_url = "urn:uuid:4fab6e5c-7a8d-4e9f-8a0b-1c2d3e4f5a6b"
    organization_url = "urn:uuid:5abc7f6d-8b9e-4fa0-9b1c-2d3e4f5a6b7c"
    identifiers = [
        {"system": "https://relais.example/series", "value": SERIES},
        {"system": "https://relais.example/screening", "value": SCREENING},
    ]
    loinc = {
        "coding": [
            {
                "system": "http://loinc.org",
                "code": "94558-4",
                "display": LOINC_DISPLAY,
            }
        ]
    }
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": "https://relais.example/patient-pseudonym", "value": "9f86d081884c7d659a2feaa0c55ad015"}],
        "gender": "female",
        "birthDate": "1985-05-12",
    }
    if not anonymous:
        patient["identifier"].append({"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "285057512345678"})
        patient["name"] = [{"use": "official", "family": "DURAND-TESTEUR", "given": ["Camille"]}]
        patient["telecom"] = [{"system": "phone", "value": "+33612345678"}, {"system": "email", "value": "camille@example.org"}]
        patient["address"] = [{"line": ["1 rue du Test"], "city": "Paris", "postalCode": "75010", "country": "FR"}]
    resources = [
        (patient_url, patient),
        (
            observation_url,
            {
                "resourceType": "Observation",
                "identifier": identifiers,
                "status": status,
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": loinc,
                "subject": {"reference": patient_url},
                "effectiveDateTime": "2024-03-15T10:10:00+01:00",
                "issued": "2024-03-15T10:20:00+01:00",
                "performer": [{"reference": organization_url}],
                "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "260415000", "display": "Not detected"}]},
                "specimen": {"reference": specimen_url},
                "device": {"reference": device_url},
            },
        ),
        (
            report_url,
            {
                "resourceType": "DiagnosticReport",
                "identifier": identifiers[1:],
                "status": status,
                "code": loinc,
                "subject": {"reference": patient_url},
                "effectiveDateTime": "2024-03-15T10:10:00+01:00",
                "issued": "2024-03-15T10:25:00+01:00",
                "performer": [{"reference": organization_url}],
                "specimen": [{"reference": specimen_url}],
                "result": [{"reference": observation_url}],
            },
        ),
        (
            specimen_url,
            {
                "resourceType": "Specimen",
                "type": {"coding": [{"system": "http://snomed.info/sct", "code": "258500001", "display": "Nasopharyngeal swab"}]},
                "subject": {"reference": patient_url},
                "receivedTime": "2024-03-15T10:15:00+01:00",
                "collection": {"collectedDateTime": "2024-03-15T10:10:00+01:00"},
            },
        ),
        (
            device_url,
            {
                "resourceType": "Device",
                "identifier": [{"system": "https://covid-19-diagnostics.jrc.ec.europa.eu/devices", "value": "1232"}],
                "manufacturer": "Abbott Rapid Diagnostics",
                "deviceName": [{"name": "Panbio COVID-19 Ag Rapid Test", "type": "manufacturer-name"}],
            },
        ),
        (
            organization_url,
            {
                "resourceType": "Organization",
                "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000010"}],
                "name": "Pharmacie de la Gare",
                "address": [{"line": ["12 place de la Gare"], "city": "Paris", "postalCode": "75010", "country": "FR"}],
            },
        ),
    ]
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "https://relais.example/message", "value": message_id},
        "type": "transaction",
        "timestamp": "2024-03-15T10:30:00+01:00",
        "entry": [
            {"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
            for url, resource in resources
        ],
    }


def fhir_bundle(message_id: str, **kwargs: Any) -> bytes:
    return json.dumps(fhir_bundle_dict(message_id, **kwargs)).encode("utf-8")
