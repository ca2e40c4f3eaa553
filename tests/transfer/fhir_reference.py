"""Test oracle: the FHIR renderer as it was before issue 13 (every resource built through fhir.resources models).

relais.transfer.formats.fhir now writes plain JSON; tests/transfer/test_renderer_proof.py checks that it renders
byte for byte what this one does. Kept as it was on purpose: do not "fix" it, it is the reference. Issue 16 changed
the contract (stable identifiers from the series id, conditional updates, FR Core profiles, identifier systems from
relais.transfer.identifiers; the recording pharmacist as an FR Core Practitioner, listed first in performer): those
changes are mirrored here, still built through the fhir.resources models.

Original docstring: FHIR R4 (fhir.resources R4B models) transaction Bundle for one screening version.

Every resource is built as a fhir.resources model (pydantic validation: types, cardinalities, string
and date formats); a model that does not validate raises RenderError, a value without a code in the
target vocabulary raises UnmappableValue before anything is built.

Entries are POSTed with ifNoneExist on a business identifier, so replaying the same bundle creates
nothing twice; fullUrls are uuid5 of the message id, so a retry renders byte-identical JSON.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.specimen import Specimen
from pydantic import ValidationError

from relais.screenings.vocab import RESULTS, SPECIMENS
from relais.transfer.formats.hl7v2 import COUNTRY_ALPHA3, RenderError
from relais.transfer.identifiers import namespace
from relais.transfer.payload import PatientPart, TransferPayload, UnmappableValue

DEVICE_SYSTEM = "https://covid-19-diagnostics.jrc.ec.europa.eu/devices"  # the EU rapid test list (device ids)
FINESS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
FR_CORE = "https://hl7.fr/ig/fhir/core"
FR_TYPE = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0203"
LOINC_SYSTEM = "http://loinc.org"
SNOMED_SYSTEM = "http://snomed.info/sct"

STATUS = {"final": "final", "corrected": "corrected", "removed": "entered-in-error"}
GENDER = {"F": "female", "M": "male", "O": "other", "U": "unknown"}
_LOINC = re.compile(r"\d{1,7}-\d")
_FINESS = re.compile(r"[0-9A-Z]{9}")
_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
_URN_NAMESPACE = uuid.UUID("6f7f3a52-9d1c-4f0e-9a57-2f4b8c1d0e31")


def _str(value: str) -> str | None:
    """FHIR string: no control characters, trimmed; None (element omitted) when nothing is left."""
    cleaned = _BREAKS.sub(" ", value or "").strip()
    return cleaned or None


def _compact(value: Any) -> Any:
    """Drop None, empty strings, lists and dicts (FHIR forbids empty elements)."""
    if isinstance(value, dict):
        members = {key: _compact(item) for key, item in value.items()}
        return {key: item for key, item in members.items() if item not in (None, "", [], {})}
    if isinstance(value, list):
        items = [_compact(item) for item in value]
        return [item for item in items if item not in (None, "", [], {})]
    return value


def _aware(value: datetime, field: str) -> datetime:
    if value.utcoffset() is None:
        raise UnmappableValue(field, value)
    return value


def _search(system: str, value: str) -> str:
    return f"identifier={system}|{quote(value, safe='-._~')}"


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": _str(display)}]}


def _check(payload: TransferPayload) -> None:
    if payload.status not in STATUS:
        raise UnmappableValue("status", payload.status)
    if not payload.results:
        raise UnmappableValue("results", payload.results)
    for index, result in enumerate(payload.results):
        if not _LOINC.fullmatch(result.loinc_code or ""):
            raise UnmappableValue(f"results[{index}].loinc_code", result.loinc_code)
        if result.result_snomed not in RESULTS:
            raise UnmappableValue(f"results[{index}].result_snomed", result.result_snomed)
    if payload.specimen_snomed not in SPECIMENS:
        raise UnmappableValue("specimen_snomed", payload.specimen_snomed)
    if not _FINESS.fullmatch(payload.pharmacy_finess or ""):
        raise UnmappableValue("pharmacy_finess", payload.pharmacy_finess)
    for field in ("message_id", "patient_pseudonym", "device_id"):
        if not _str(getattr(payload, field)):
            raise UnmappableValue(field, getattr(payload, field))
    if payload.recorder_rpps and not re.fullmatch(r"\d{11}", payload.recorder_rpps):
        raise UnmappableValue("recorder_rpps", payload.recorder_rpps)
    if payload.patient is not None:
        if payload.patient.sex not in GENDER:
            raise UnmappableValue("patient.sex", payload.patient.sex)
        if payload.patient.country and payload.patient.country not in COUNTRY_ALPHA3:
            raise UnmappableValue("patient.country", payload.patient.country)


def _patient(payload: TransferPayload) -> dict[str, Any]:
    pseudonym: dict[str, Any] = {"system": namespace("pseudonym").system, "value": payload.patient_pseudonym}
    person: PatientPart | None = payload.patient
    meta = {"profile": [f"{FR_CORE}/StructureDefinition/fr-core-patient"]}
    if person is None:
        # A pseudonymous destination, or a test recorded under the old "no consent": the pseudonym and nothing else.
        return {"meta": meta, "identifier": [pseudonym]}
    identifiers = [pseudonym]
    if _str(person.nir):
        identifiers.append(
            {
                "use": "official",
                "type": {"coding": [{"system": FR_TYPE, "code": "INS-NIR"}]},
                "system": NIR_SYSTEM,
                "value": _str(person.nir),
            }
        )
    status = ("VALI", "Identité validée") if getattr(person, "identity_verified", None) is True else ("PROV", "Identité provisoire")
    reliability = {
        "url": f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability",
        "extension": [
            {
                "url": "identityStatus",
                "valueCoding": {"system": f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status", "code": status[0], "display": status[1]},
            }
        ],
    }
    address: dict[str, Any] = {}
    if _str(person.address_line) or _str(person.city) or _str(person.postcode):  # as PID-11: the country alone is no address
        address = {
            "use": "home",
            "line": [_str(person.address_line)],
            "city": _str(person.city),
            "postalCode": _str(person.postcode),
            "country": person.country,
        }
    telecom = []
    if _str(person.phone):
        telecom.append({"system": "phone", "value": _str(person.phone), "use": "mobile"})
    if _str(person.email):
        telecom.append({"system": "email", "value": _str(person.email)})
    return {
        "meta": meta,
        "extension": [reliability],
        "identifier": identifiers,
        "name": [{"use": "official", "family": _str(person.last_name), "given": [_str(person.first_names)]}],
        "gender": GENDER[person.sex],
        "birthDate": person.date_of_birth,
        "address": [address] if address else [],
        "telecom": telecom,
    }


def _practitioner(payload: TransferPayload) -> tuple[str, type[Any], dict[str, Any], str] | None:
    """The recording pharmacist: idNatPs ("8" + RPPS, type IDNPS) or, without RPPS, the staff account id; None when
    the account is gone. The staff id typed INTRN."""
    if payload.recorder_rpps:
        system, value = RPPS_SYSTEM, "8" + payload.recorder_rpps
        identifier: dict[str, Any] = {
            "use": "official",
            "type": {"coding": [{"system": FR_TYPE, "code": "IDNPS"}]},
            "system": system,
            "value": value,
        }
    elif _str(payload.recorder_id):
        system, value = namespace("staff").system, str(_str(payload.recorder_id))
        identifier = {"type": {"coding": [{"system": FR_TYPE, "code": "INTRN"}]}, "system": system, "value": value}
    else:
        return None
    name = {"family": _str(payload.recorder_family), "given": [_str(payload.recorder_given)]}
    content = {
        "meta": {"profile": [f"{FR_CORE}/StructureDefinition/fr-core-practitioner"]},
        "identifier": [identifier],
        "name": [name] if _compact(name) else [],
    }
    return "practitioner", Practitioner, content, _search(system, value)


def render_bundle(payload: TransferPayload) -> str:
    """The screening version as a FHIR R4 transaction Bundle (JSON text)."""
    _check(payload)
    created_at = _aware(payload.created_at, "created_at")
    sampled_at = _aware(payload.sampled_at, "sampled_at")
    recorded_at = _aware(payload.recorded_at, "recorded_at")
    status = STATUS[payload.status]
    series = str(payload.series_id)
    order = namespace("order").system
    observation_system = namespace("observation").system
    specimen_system = namespace("specimen").system
    version_identifiers = [{"system": order, "value": series}]

    def urn(key: str) -> str:
        return f"urn:uuid:{uuid.uuid5(_URN_NAMESPACE, f'{payload.message_id}/{key}')}"

    organization_ref = {"reference": urn("organization")}
    patient_ref = {"reference": urn("patient")}
    device_ref = {"reference": urn("device")}
    specimen_ref = {"reference": urn("specimen")}
    practitioner = _practitioner(payload)
    performers = [{"reference": urn("practitioner")}, organization_ref] if practitioner else [organization_ref]

    resources: list[tuple[str, type[Any], dict[str, Any], str]] = [
        (
            "organization",
            Organization,
            {
                "meta": {"profile": [f"{FR_CORE}/StructureDefinition/fr-core-organization"]},
                "identifier": [
                    {
                        "use": "official",
                        "type": {"coding": [{"system": FR_TYPE, "code": "IDNST"}]},
                        "system": FINESS_SYSTEM,
                        "value": "1" + payload.pharmacy_finess,
                    },
                    {
                        "type": {"coding": [{"system": FR_TYPE, "code": "FINEG"}]},
                        "system": "https://finess.esante.gouv.fr",
                        "value": payload.pharmacy_finess,
                    },
                ],
                "name": _str(payload.pharmacy_name),
                "telecom": [{"system": "phone", "value": payload.pharmacy_phone, "use": "work"}] if payload.pharmacy_phone else [],
                "address": [
                    {
                        "line": [_str(payload.pharmacy_address_line)],
                        "city": _str(payload.pharmacy_city),
                        "postalCode": _str(payload.pharmacy_postcode),
                        "country": "FR",
                    }
                ],
            },
            _search(FINESS_SYSTEM, "1" + payload.pharmacy_finess),
        ),
        *([practitioner] if practitioner else []),
        ("patient", Patient, _patient(payload), _search(namespace("pseudonym").system, payload.patient_pseudonym)),
        (
            "device",
            Device,
            {
                "identifier": [{"system": DEVICE_SYSTEM, "value": _str(payload.device_id)}],
                "deviceName": [{"name": _str(payload.device_name), "type": "manufacturer-name"}] if _str(payload.device_name) else [],
                "manufacturer": _str(payload.device_manufacturer),
            },
            _search(DEVICE_SYSTEM, payload.device_id),
        ),
        (
            "specimen",
            Specimen,
            {
                "identifier": [{"system": specimen_system, "value": series}],
                "status": "entered-in-error" if payload.status == "removed" else None,
                "type": _coding(SNOMED_SYSTEM, payload.specimen_snomed, payload.specimen_display),
                "subject": patient_ref,
                "collection": {"collectedDateTime": sampled_at},
            },
            _search(specimen_system, series),
        ),
    ]
    observation_refs = []
    for index, result in enumerate(payload.results):
        observation_id = f"{series}/{result.analyte or index + 1}"
        key = f"observation/{index}"
        observation_refs.append({"reference": urn(key)})
        resources.append(
            (
                key,
                Observation,
                {
                    "identifier": [*version_identifiers, {"system": observation_system, "value": observation_id}],
                    "status": status,
                    "category": [_coding("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")],
                    "code": {**_coding(LOINC_SYSTEM, result.loinc_code, result.loinc_display), "text": _str(result.analyte_label)},
                    "subject": patient_ref,
                    "effectiveDateTime": sampled_at,
                    "issued": recorded_at,
                    "performer": performers,
                    "valueCodeableConcept": _coding(SNOMED_SYSTEM, result.result_snomed, result.result_display),
                    "device": device_ref,
                    "specimen": specimen_ref,
                },
                _search(observation_system, observation_id),
            )
        )
    first = payload.results[0]  # with a multiplex device, the first analyte's LOINC stands for the report
    resources.append(
        (
            "report",
            DiagnosticReport,
            {
                "identifier": version_identifiers,
                "status": status,
                "category": [_coding("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
                "code": _coding(LOINC_SYSTEM, first.loinc_code, first.loinc_display),
                "subject": patient_ref,
                "effectiveDateTime": sampled_at,
                "issued": recorded_at,
                "performer": performers,
                "specimen": [specimen_ref],
                "result": observation_refs,
            },
            _search(order, series),
        )
    )

    try:
        entries = [
            {
                "fullUrl": urn(key),
                "resource": model.model_validate(_compact(content)),
                "request": (
                    {"method": "POST", "url": model.__name__, "ifNoneExist": if_none_exist}
                    if model is Device
                    else {"method": "PUT", "url": f"{model.__name__}?{if_none_exist}"}
                ),
            }
            for key, model, content, if_none_exist in resources
        ]
        bundle = Bundle.model_validate(
            {
                "identifier": {"system": namespace("message").system, "value": payload.message_id},
                "type": "transaction",
                "timestamp": created_at,
                "entry": entries,
            }
        )
    except ValidationError as exc:
        raise RenderError(f"FHIR validation failed: {exc}") from exc
    return str(bundle.model_dump_json())


def parse_bundle_message_id(text: str) -> str:
    """Bundle.identifier.value (our message id) of a rendered bundle; ValueError if absent."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise ValueError("not a FHIR Bundle")
    identifier = data.get("identifier")
    if (
        not isinstance(identifier, dict)
        or identifier.get("system") != namespace("message").system
        or not isinstance(identifier.get("value"), str)
    ):
        raise ValueError("the Bundle has no Relais message id")
    return str(identifier["value"])
