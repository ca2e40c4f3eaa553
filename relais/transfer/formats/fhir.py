"""FHIR R4 transaction Bundle for one screening version, written as plain JSON.

Corrections are updates (issue 16): every version of one test writes the SAME resources. The Observations,
DiagnosticReport, Specimen and ServiceRequest carry identifiers derived from the test's series id (never the
version's id), and each entry is a conditional update, ``PUT <Type>?identifier=<system>|<value>``, so a receiver
keeps one current resource per test and replaces it: status ``final``, then ``corrected``, then ``entered-in-error``
for a removal. The Patient is a conditional update on its pseudonym too, so identity that arrives later (or an
identity correction) replaces the earlier record instead of leaving an empty one; the Organization on its FINESS
(idNatSt). Only the Device stays a conditional create (it describes the kit, not the test). Identifier systems of
Relais's own ids come from relais.transfer.identifiers (the deployment's OID arc or URL).

FR Core (Interop'Santé, https://hl7.fr/ig/fhir/core): the Patient declares fr-core-patient; the NIR is typed INS-NIR
(fr-core-cs-v2-0203) under urn:oid:1.2.250.1.213.1.4.8, and the identity-reliability extension says VALI when the
pharmacist recorded that the identity was checked on an identity document, PROV otherwise (never QUAL or RECUP:
Relais does not call INSi). The Organization declares fr-core-organization with the FINESS both as idNatSt
("1" + FINESS under urn:oid:1.2.250.1.71.4.2.2, type IDNST) and as FINEG (bare FINESS, https://finess.esante.gouv.fr),
and its telecom (system phone, use work, the E.164 number) when the pharmacy has a phone (HL7 ORC-23 likewise).

The pharmacist who recorded the version (HL7 ORC-12/OBR-16 likewise) is a Practitioner declaring fr-core-practitioner,
written by conditional update on its identifier. Sources: FR Core's FRCorePractitionerProfile
(github.com/Interop-Sante/hl7.fhir.fr.core, input/fsh/profiles/FRCorePractitionerProfile.fsh) slices
Practitioner.identifier by value on ``system`` (open); the slice idNatPs has type fr-core-cs-v2-0203#IDNPS (1..) and
system urn:oid:1.2.250.1.71.4.2.1, its value "8" + RPPS (the IdNat_PS of the CI-SIS). FR Core 1.1.0 (Interop-Sante/
FHIR-FR-Core, same file) requires identifier.type and .system on every identifier and names, for "un employé identifié
au sein de sa structure", the structure's own namespace; its value set fr-core-practitioner-identifier-type
(input/fsh/valuesets/FRCoreValueSetPractitionerIdentifierType.fsh) has INTRN "Identifiant interne". So: with an RPPS,
the idNatPs (use official); without, the staff account's id under namespace("staff"), type INTRN; the name (family,
given) when the account has one. When the account is gone (no RPPS and no account id), no Practitioner at all, nothing
is invented. Observation.performer and DiagnosticReport.performer list the Practitioner, then the Organization (R4
allows both there).

Resources are built as dicts in the key order of the fhir.resources (R4B) models and dumped compactly, so the
text is what ``Bundle.model_dump_json()`` gave when every resource went through those models (2.1 ms a bundle
against 0.2 ms here). The test suite proves the output instead of every send re-validating it:
tests/transfer/test_renderer_proof.py checks it against fhir.resources, the official FHIR R4 JSON schema and the
former model-based renderer, byte for byte. At run time only a structural check runs (check_structure).

Replaying the same bundle changes nothing (conditional updates with the same content, a conditional create for the
Device); fullUrls are uuid5 of the message id, so a retry renders byte-identical JSON.

Ask-at-order-entry answers and the test kit, each only when recorded (without them the bundle is what it always was,
byte for byte; the same codes as the HL7 renderer, see hl7v2's docstring):
  - AOE answers are Observations with category ``survey``, the test's status and identifiers: LOINC 95419-8 with a
    valueCodeableConcept from v2-0136 (Y, N) or v3-NullFlavor (UNK); LOINC 65222-2 with a valueDateTime (the
    onset date). As SimpleReport's FhirConverter does (and ReportStream reads), they hang off a ServiceRequest (the
    test ordered, status completed) through ``supportingInfo``, and the DiagnosticReport points at that ServiceRequest
    with ``basedOn``; they are not in DiagnosticReport.result, which holds only results. The ServiceRequest is only
    written when there is an AOE answer.
  - The kit: the Device (the EU device id, as before) also carries ``lotNumber`` and ``expirationDate``; since it is
    then one batch of kits rather than the model, its conditional create keys on a kit identifier (device id, expiry,
    lot; namespace "device") instead of the device id alone, so two lots never collapse into the first one a server saw.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from relais.screenings.vocab import RESULTS, SPECIMENS
from relais.transfer.formats.hl7v2 import COUNTRY_ALPHA3, RenderError
from relais.transfer.identifiers import FINESS_OID, INS_NIR_OID, RPPS_OID, namespace
from relais.transfer.payload import PatientPart, TransferPayload, UnmappableValue

DEVICE_SYSTEM = "https://covid-19-diagnostics.jrc.ec.europa.eu/devices"  # the EU rapid test list (device ids)
FINESS_SYSTEM = f"urn:oid:{FINESS_OID}"  # idNatSt: "1" + FINESS
FINESS_URL_SYSTEM = "https://finess.esante.gouv.fr"  # FR Core's FINESS slice: the bare FINESS, type FINEG
NIR_SYSTEM = f"urn:oid:{INS_NIR_OID}"
RPPS_SYSTEM = f"urn:oid:{RPPS_OID}"  # idNatPs: "8" + RPPS
LOINC_SYSTEM = "http://loinc.org"
SNOMED_SYSTEM = "http://snomed.info/sct"
FR_CORE = "https://hl7.fr/ig/fhir/core"
PATIENT_PROFILE = f"{FR_CORE}/StructureDefinition/fr-core-patient"
ORGANIZATION_PROFILE = f"{FR_CORE}/StructureDefinition/fr-core-organization"
PRACTITIONER_PROFILE = f"{FR_CORE}/StructureDefinition/fr-core-practitioner"
IDENTITY_RELIABILITY_URL = f"{FR_CORE}/StructureDefinition/fr-core-identity-reliability"
IDENTITY_STATUS_SYSTEM = f"{FR_CORE}/CodeSystem/fr-core-cs-identity-status"
FR_IDENTIFIER_TYPE_SYSTEM = f"{FR_CORE}/CodeSystem/fr-core-cs-v2-0203"
IDENTITY_STATUS = {True: ("VALI", "Identité validée"), False: ("PROV", "Identité provisoire")}
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
YES_NO_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0136"
NULL_FLAVOR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
AOE_SYMPTOMS_LOINC = ("95419-8", "Has symptoms related to condition of interest")
AOE_ONSET_LOINC = ("65222-2", "Date and time of symptom onset")
SYMPTOM_ANSWERS = {
    "yes": (YES_NO_SYSTEM, "Y", "Yes"),
    "no": (YES_NO_SYSTEM, "N", "No"),
    "unknown": (NULL_FLAVOR_SYSTEM, "UNK", "Unknown"),
}
REPORT_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0074"

STATUS = {"final": "final", "corrected": "corrected", "removed": "entered-in-error"}
GENDER = {"F": "female", "M": "male", "O": "other", "U": "unknown"}
_LOINC = re.compile(r"\d{1,7}-\d")
_FINESS = re.compile(r"[0-9A-Z]{9}")
_RPPS = re.compile(r"\d{11}")
_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
# Whitespace other than a plain space (no-break, em, ideographic spaces...): the R4 JSON schema's string pattern
# ^[ \r\n\t\S]+$ refuses it, so it becomes a space.
_OTHER_SPACES = re.compile(r"[^\S ]")
_URN_NAMESPACE = uuid.UUID("6f7f3a52-9d1c-4f0e-9a57-2f4b8c1d0e31")
_URN_NAMESPACE_BYTES = _URN_NAMESPACE.bytes
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _str(value: str) -> str | None:
    """FHIR string: no control characters, other whitespace as a space, trimmed; None (element omitted) when empty."""
    cleaned = _OTHER_SPACES.sub(" ", _BREAKS.sub(" ", value or "")).strip()
    return cleaned or None


def _compact(value: Any) -> Any:
    """Drop None, empty strings, lists and dicts (FHIR forbids empty elements); recurses into containers only."""
    if type(value) is dict:
        members = {}
        for key, item in value.items():
            if type(item) is dict or type(item) is list:
                item = _compact(item)
            if item is not None and item != "" and item != [] and item != {}:
                members[key] = item
        return members
    if type(value) is list:
        items = []
        for item in value:
            if type(item) is dict or type(item) is list:
                item = _compact(item)
            if item is not None and item != "" and item != [] and item != {}:
                items.append(item)
        return items
    return value


def _urn(message_id: str, key: str) -> str:
    """urn:uuid: of uuid5(namespace, "message id/key"), without building UUID objects (11 per bundle)."""
    digest = bytearray(hashlib.sha1(_URN_NAMESPACE_BYTES + f"{message_id}/{key}".encode()).digest()[:16])  # noqa: S324 - uuid5 is SHA-1
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _datetime(value: datetime, field: str) -> str:
    """FHIR dateTime/instant as fhir.resources wrote it: ISO 8601, microseconds only when set, Z for UTC, +HH:MM."""
    offset = value.utcoffset()
    if offset is None:
        raise UnmappableValue(field, value)
    text = value.replace(tzinfo=None).isoformat()
    seconds = int(offset.total_seconds())
    if seconds == 0:
        return text + "Z"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{text}{'-' if seconds < 0 else '+'}{hours:02d}:{minutes:02d}"


def _date(value: date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


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
    if payload.recorder_rpps and not _RPPS.fullmatch(payload.recorder_rpps):
        raise UnmappableValue("recorder_rpps", payload.recorder_rpps)
    if payload.symptoms and payload.symptoms not in SYMPTOM_ANSWERS:
        raise UnmappableValue("symptoms", payload.symptoms)
    if payload.symptom_onset is not None and payload.symptoms != "yes":  # screening_check refuses it
        raise UnmappableValue("symptom_onset", payload.symptom_onset)
    if payload.patient is not None:
        if payload.patient.sex not in GENDER:
            raise UnmappableValue("patient.sex", payload.patient.sex)
        if payload.patient.country and payload.patient.country not in COUNTRY_ALPHA3:
            raise UnmappableValue("patient.country", payload.patient.country)


@dataclass(frozen=True)
class Systems:
    """The FHIR identifier systems of Relais's own ids, from the deployment's namespace (read once per bundle)."""

    message: str
    order: str
    observation: str
    specimen: str
    pseudonym: str
    device: str
    staff: str


def systems() -> Systems:
    return Systems(
        message=namespace("message").system,
        order=namespace("order").system,
        observation=namespace("observation").system,
        specimen=namespace("specimen").system,
        pseudonym=namespace("pseudonym").system,
        device=namespace("device").system,
        staff=namespace("staff").system,
    )


def _identity_reliability(verified: bool | None) -> dict[str, Any]:
    """FR Core identity-reliability: VALI when checked on an identity document, PROV otherwise (never QUAL: no INSi)."""
    code, display = IDENTITY_STATUS[verified is True]
    return {
        "extension": [{"url": "identityStatus", "valueCoding": {"system": IDENTITY_STATUS_SYSTEM, "code": code, "display": display}}],
        "url": IDENTITY_RELIABILITY_URL,
    }


def _patient(payload: TransferPayload, ids: Systems) -> dict[str, Any]:
    pseudonym: dict[str, Any] = {"system": ids.pseudonym, "value": payload.patient_pseudonym}
    person: PatientPart | None = payload.patient
    meta = {"profile": [PATIENT_PROFILE]}
    if person is None:
        # A pseudonymous destination, or a test recorded under the old "no consent": the pseudonym and nothing else.
        return {"resourceType": "Patient", "meta": meta, "identifier": [pseudonym]}
    identifiers = [pseudonym]
    if _str(person.nir):
        identifiers.append(
            {
                "use": "official",
                "type": {"coding": [{"system": FR_IDENTIFIER_TYPE_SYSTEM, "code": "INS-NIR"}]},
                "system": NIR_SYSTEM,
                "value": _str(person.nir),
            }
        )
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
    verified = getattr(person, "identity_verified", None)
    return {
        "resourceType": "Patient",
        "meta": meta,
        "extension": [_identity_reliability(verified)],
        "identifier": identifiers,
        "name": [{"use": "official", "family": _str(person.last_name), "given": [_str(person.first_names)]}],
        "telecom": telecom,
        "gender": GENDER[person.sex],
        "birthDate": _date(person.date_of_birth),
        "address": [address] if address else [],
    }


def _organization(payload: TransferPayload) -> dict[str, Any]:
    """FR Core Organization: the FINESS as idNatSt ("1" + FINESS, the conditional update key) and as FINEG; telecom
    the pharmacy's phone (E.164, use work) when it has one."""
    return {
        "resourceType": "Organization",
        "meta": {"profile": [ORGANIZATION_PROFILE]},
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": FR_IDENTIFIER_TYPE_SYSTEM, "code": "IDNST"}]},
                "system": FINESS_SYSTEM,
                "value": "1" + payload.pharmacy_finess,
            },
            {
                "type": {"coding": [{"system": FR_IDENTIFIER_TYPE_SYSTEM, "code": "FINEG"}]},
                "system": FINESS_URL_SYSTEM,
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
    }


def _practitioner(payload: TransferPayload, ids: Systems) -> tuple[dict[str, Any], str] | None:
    """FR Core Practitioner of the pharmacist who recorded the version and its conditional update search; None when the
    account is gone (see the module docstring)."""
    if payload.recorder_rpps:
        system, value = RPPS_SYSTEM, "8" + payload.recorder_rpps
        identifier: dict[str, Any] = {
            "use": "official",
            "type": {"coding": [{"system": FR_IDENTIFIER_TYPE_SYSTEM, "code": "IDNPS"}]},
            "system": system,
            "value": value,
        }
    elif _str(payload.recorder_id):
        system, value = ids.staff, str(_str(payload.recorder_id))
        identifier = {"type": {"coding": [{"system": FR_IDENTIFIER_TYPE_SYSTEM, "code": "INTRN"}]}, "system": system, "value": value}
    else:
        return None
    family, given = _str(payload.recorder_family), _str(payload.recorder_given)
    resource = {
        "resourceType": "Practitioner",
        "meta": {"profile": [PRACTITIONER_PROFILE]},
        "identifier": [identifier],
        "name": [{"family": family, "given": [given]}] if family or given else [],
    }
    return resource, _search(system, value)


def bundle_dict(payload: TransferPayload) -> dict[str, Any]:
    """The transaction Bundle as plain JSON data (keys in the models' order, empty elements dropped)."""
    _check(payload)
    created_at = _datetime(payload.created_at, "created_at")
    sampled_at = _datetime(payload.sampled_at, "sampled_at")
    recorded_at = _datetime(payload.recorded_at, "recorded_at")
    status = STATUS[payload.status]
    removed = payload.status == "removed"
    ids = systems()
    series = str(payload.series_id)  # the same for every version of the test: every identifier below derives from it
    order_identifier = {"system": ids.order, "value": series}

    urns: dict[str, str] = {}

    def urn(key: str) -> str:
        if key not in urns:
            urns[key] = _urn(payload.message_id, key)
        return urns[key]

    organization_ref = {"reference": urn("organization")}
    patient_ref = {"reference": urn("patient")}
    device_ref = {"reference": urn("device")}
    specimen_ref = {"reference": urn("specimen")}
    practitioner = _practitioner(payload, ids)
    performers = [{"reference": urn("practitioner")}, organization_ref] if practitioner else [organization_ref]

    # (key, resource, conditional search, method): PUT = conditional update, POST = conditional create (ifNoneExist)
    resources: list[tuple[str, dict[str, Any], str, str]] = [
        ("organization", _organization(payload), _search(FINESS_SYSTEM, "1" + payload.pharmacy_finess), "PUT"),
    ]
    if practitioner:
        resources.append(("practitioner", practitioner[0], practitioner[1], "PUT"))
    resources += [
        ("patient", _patient(payload, ids), _search(ids.pseudonym, payload.patient_pseudonym), "PUT"),
        _device(payload, ids),
        (
            "specimen",
            {
                "resourceType": "Specimen",
                "identifier": [{"system": ids.specimen, "value": series}],
                "status": "entered-in-error" if removed else None,
                "type": _coding(SNOMED_SYSTEM, payload.specimen_snomed, payload.specimen_display),
                "subject": patient_ref,
                "collection": {"collectedDateTime": sampled_at},
            },
            _search(ids.specimen, series),
            "PUT",
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
                {
                    "resourceType": "Observation",
                    "identifier": [order_identifier, {"system": ids.observation, "value": observation_id}],
                    "status": status,
                    "category": [_coding(CATEGORY_SYSTEM, "laboratory", "Laboratory")],
                    "code": {**_coding(LOINC_SYSTEM, result.loinc_code, result.loinc_display), "text": _str(result.analyte_label)},
                    "subject": patient_ref,
                    "effectiveDateTime": sampled_at,
                    "issued": recorded_at,
                    "performer": performers,
                    "valueCodeableConcept": _coding(SNOMED_SYSTEM, result.result_snomed, result.result_display),
                    "specimen": specimen_ref,
                    "device": device_ref,
                },
                _search(ids.observation, observation_id),
                "PUT",
            )
        )
    first = payload.results[0]  # with a multiplex device, the first analyte's LOINC stands for the report
    aoe_refs = []
    for code, value in _aoe_answers(payload):
        observation_id = f"{series}/aoe/{code[0]}"
        key = f"aoe/{code[0]}"
        aoe_refs.append({"reference": urn(key)})
        resources.append(
            (
                key,
                {
                    "resourceType": "Observation",
                    "identifier": [order_identifier, {"system": ids.observation, "value": observation_id}],
                    "status": status,
                    "category": [_coding(CATEGORY_SYSTEM, "survey", "Survey")],
                    "code": _coding(LOINC_SYSTEM, code[0], code[1]),
                    "subject": patient_ref,
                    "effectiveDateTime": sampled_at,
                    "issued": recorded_at,
                    **value,
                },
                _search(ids.observation, observation_id),
                "PUT",
            )
        )
    if aoe_refs:
        resources.append(
            (
                "service-request",
                {
                    "resourceType": "ServiceRequest",
                    "identifier": [order_identifier],
                    "status": "entered-in-error" if removed else "completed",
                    "intent": "order",
                    "code": _coding(LOINC_SYSTEM, first.loinc_code, first.loinc_display),
                    "subject": patient_ref,
                    "occurrenceDateTime": sampled_at,
                    "supportingInfo": aoe_refs,
                    "specimen": [specimen_ref],
                },
                _search(ids.order, series),
                "PUT",
            )
        )
    resources.append(
        (
            "report",
            {
                "resourceType": "DiagnosticReport",
                "identifier": [order_identifier],
                "basedOn": [{"reference": urn("service-request")}] if aoe_refs else None,
                "status": status,
                "category": [_coding(REPORT_CATEGORY_SYSTEM, "LAB", "Laboratory")],
                "code": _coding(LOINC_SYSTEM, first.loinc_code, first.loinc_display),
                "subject": patient_ref,
                "effectiveDateTime": sampled_at,
                "issued": recorded_at,
                "performer": performers,
                "specimen": [specimen_ref],
                "result": observation_refs,
            },
            _search(ids.order, series),
            "PUT",
        )
    )
    return {
        "resourceType": "Bundle",
        "identifier": {"system": ids.message, "value": payload.message_id},
        "type": "transaction",
        "timestamp": created_at,
        "entry": [
            {
                "fullUrl": urn(key),
                "resource": _compact(content),
                "request": (
                    {"method": "PUT", "url": f"{content['resourceType']}?{search}"}
                    if method == "PUT"
                    else {"method": "POST", "url": content["resourceType"], "ifNoneExist": search}
                ),
            }
            for key, content, search, method in resources
        ],
    }


def _device(payload: TransferPayload, ids: Systems) -> tuple[str, dict[str, Any], str, str]:
    """The Device entry: the EU device id; with a lot or an expiry, that batch of kits (see the module docstring)."""
    identifiers = [{"system": DEVICE_SYSTEM, "value": _str(payload.device_id)}]
    search = _search(DEVICE_SYSTEM, payload.device_id)
    lot = _str(payload.kit_lot)
    expiry = _date(payload.kit_expiry) if payload.kit_expiry is not None else None
    if lot or expiry:
        kit = f"{payload.device_id}:{expiry or ''}:{lot or ''}"  # the lot last: any character it holds stays unambiguous
        identifiers.append({"system": ids.device, "value": kit})
        search = _search(ids.device, kit)
    return (
        "device",
        {
            "resourceType": "Device",
            "identifier": identifiers,
            "manufacturer": _str(payload.device_manufacturer),
            "expirationDate": expiry,
            "lotNumber": lot,
            "deviceName": [{"name": _str(payload.device_name), "type": "manufacturer-name"}] if _str(payload.device_name) else [],
        },
        search,
        "POST",
    )


def _aoe_answers(payload: TransferPayload) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    """(LOINC code and display, value element) of each ask-at-order-entry answer recorded."""
    answers: list[tuple[tuple[str, str], dict[str, Any]]] = []
    if payload.symptoms:
        system, code, display = SYMPTOM_ANSWERS[payload.symptoms]
        answers.append((AOE_SYMPTOMS_LOINC, {"valueCodeableConcept": _coding(system, code, display)}))
    if payload.symptom_onset is not None:
        answers.append((AOE_ONSET_LOINC, {"valueDateTime": _date(payload.symptom_onset)}))
    return answers


_REQUIRED = {
    "Organization": ("identifier",),
    "Practitioner": ("identifier",),
    "Patient": ("identifier",),
    "Device": ("identifier",),
    "Specimen": ("identifier", "type", "subject"),
    "Observation": ("status", "code", "subject"),
    "ServiceRequest": ("status", "intent", "subject", "supportingInfo"),
    "DiagnosticReport": ("status", "code", "subject", "result"),
}
_VALUES = ("valueCodeableConcept", "valueDateTime")  # an Observation has exactly one
_REFERENCE_LISTS = ("supportingInfo", "basedOn", "result", "specimen", "performer")


def check_structure(bundle: dict[str, Any]) -> None:
    """Run-time guard (microseconds): a transaction of the expected resources, each with what the platform reads,
    every reference pointing at an entry of the bundle, every entry but the Device a conditional update (PUT on an
    identifier). RenderError otherwise (a bug, never bad data)."""
    entries = bundle.get("entry") or []
    if bundle.get("type") != "transaction" or not bundle.get("identifier", {}).get("value") or not entries:
        raise RenderError("FHIR structure: not a transaction bundle with a message id and entries")
    urls = {entry.get("fullUrl") for entry in entries}
    for index, entry in enumerate(entries):
        resource = entry.get("resource") or {}
        kind = resource.get("resourceType")
        required = _REQUIRED.get(kind or "")
        if required is None or any(not resource.get(name) for name in required):
            raise RenderError(f"FHIR structure: entry {index} ({kind}) lacks a required element")
        request = entry.get("request") or {}
        if kind == "Device":
            if request.get("method") != "POST" or request.get("url") != kind or not request.get("ifNoneExist"):
                raise RenderError(f"FHIR structure: entry {index} has no conditional create")
        elif request.get("method") != "PUT" or not str(request.get("url") or "").startswith(f"{kind}?identifier="):
            raise RenderError(f"FHIR structure: entry {index} is not a conditional update")
        if kind == "Observation" and sum(name in resource for name in _VALUES) != 1:
            raise RenderError(f"FHIR structure: entry {index} (Observation) has no value or several")
        for name in ("subject", "specimen", "device"):
            reference = resource.get(name)
            if isinstance(reference, dict) and reference.get("reference") not in urls:
                raise RenderError(f"FHIR structure: entry {index} refers outside the bundle")
        for name in _REFERENCE_LISTS:
            references = resource.get(name)
            if isinstance(references, list) and any(r.get("reference") not in urls for r in references):
                raise RenderError(f"FHIR structure: entry {index} refers outside the bundle")
    if [e["resource"]["resourceType"] for e in entries].count("Observation") < 1:
        raise RenderError("FHIR structure: no Observation")


def render_bundle(payload: TransferPayload) -> str:
    """The screening version as a FHIR R4 transaction Bundle (JSON text)."""
    bundle = bundle_dict(payload)
    check_structure(bundle)
    return _ENCODER.encode(bundle)


def parse_bundle_message_id(text: str) -> str:
    """Bundle.identifier.value (our message id) of a rendered bundle; ValueError if absent."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise ValueError("not a FHIR Bundle")
    identifier = data.get("identifier")
    if not isinstance(identifier, dict) or identifier.get("system") != systems().message or not isinstance(identifier.get("value"), str):
        raise ValueError("the Bundle has no Relais message id")
    return str(identifier["value"])
