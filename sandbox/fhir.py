"""FHIR R4 for the sandbox: transaction Bundles validated with fhir.resources (R4B models), responses, OperationOutcomes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

LOINC = "http://loinc.org"
SERIES_SYSTEM = "https://relais.example/series"
SCREENING_SYSTEM = "https://relais.example/screening"
RESULT_STATUSES = ("final", "corrected", "entered-in-error")
PSEUDO_NAME = "ANONYME"


@dataclass(frozen=True)
class Checked:
    message_id: str = ""
    problem: str = ""  # empty when valid
    expression: str = ""  # FHIRPath-ish location of the problem
    placer: str = ""
    filler: str = ""
    result_status: str = ""
    has_identity: bool = False
    entries: tuple[str, ...] = ()  # resourceType of each entry, for the transaction-response


def _path(loc: tuple[int | str, ...]) -> str:
    path = "Bundle"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _describe(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors()
    first = errors[0]
    path = _path(tuple(first["loc"]))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = " ".join(str(first["msg"]).split())
    return f"{path}: {message}{more}", path


def _identifier(resource: Any, system: str) -> str:
    for identifier in resource.identifier or []:
        if identifier.system == system and identifier.value:
            return str(identifier.value)
    return ""


def _has_name(patient: Any) -> bool:
    for name in patient.name or []:
        family = (name.family or "").strip()
        if family.upper() == PSEUDO_NAME:
            continue
        if family or any((given or "").strip() for given in name.given or []) or (name.text or "").strip():
            return True
    return False


def check_bundle(body: bytes) -> Checked:
    """Validate a FHIR transaction Bundle against the platform's contract."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return Checked(problem="the body is not UTF-8", expression="Bundle")
    except json.JSONDecodeError as exc:
        return Checked(problem=f"the body is not JSON: {exc}", expression="Bundle")
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        found = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        return Checked(problem=f"resourceType must be Bundle, got {found!r}", expression="Bundle.resourceType")
    identifier = data.get("identifier")
    message_id = str(identifier.get("value") or "") if isinstance(identifier, dict) else ""
    raw_entries = data.get("entry")
    entries: list[Any] = raw_entries if isinstance(raw_entries, list) else []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            resource_type = resource.get("resourceType")
            try:
                get_fhir_model_class(str(resource_type))
            except (KeyError, AttributeError, ValueError):
                expression = f"Bundle.entry[{index}].resource.resourceType"
                return Checked(message_id, f"{expression}: unknown resource type {resource_type!r}", expression)
    try:
        bundle = Bundle.model_validate(data)
    except ValidationError as exc:
        reason, expression = _describe(exc)
        return Checked(message_id, reason, expression)
    except (KeyError, TypeError, ValueError) as exc:
        return Checked(message_id, f"Bundle: not a valid FHIR R4 Bundle: {exc}", "Bundle")

    if bundle.type != "transaction":
        return Checked(message_id, f"Bundle.type must be 'transaction', got {bundle.type!r}", "Bundle.type")
    if not message_id:
        return Checked(message_id, "Bundle.identifier.value (the message id) is missing", "Bundle.identifier.value")
    observations: list[tuple[int, Any]] = []
    patients: list[Any] = []
    types: list[str] = []
    for index, entry in enumerate(bundle.entry or []):
        resource = entry.resource
        if resource is None:
            return Checked(message_id, f"Bundle.entry[{index}].resource is missing", f"Bundle.entry[{index}].resource")
        if entry.request is None:
            return Checked(message_id, f"Bundle.entry[{index}].request is required in a transaction", f"Bundle.entry[{index}].request")
        resource_type = resource.get_resource_type()
        types.append(resource_type)
        if resource_type == "Observation":
            observations.append((index, resource))
        elif resource_type == "Patient":
            patients.append(resource)
    if not observations:
        return Checked(message_id, "Bundle.entry: no Observation (at least one carries the test result)", "Bundle.entry")
    statuses: list[str] = []
    placer = filler = ""
    for index, observation in observations:
        where = f"Bundle.entry[{index}].resource"
        codings = observation.code.coding or []
        if not any(coding.system == LOINC and coding.code for coding in codings):
            return Checked(message_id, f"{where}.code: Observation.code has no LOINC coding (system {LOINC})", f"{where}.code.coding")
        if observation.status not in RESULT_STATUSES:
            return Checked(
                message_id,
                f"{where}.status: must be final, corrected or entered-in-error, got {observation.status!r}",
                f"{where}.status",
            )
        if observation.status not in statuses:
            statuses.append(observation.status)
        placer = placer or _identifier(observation, SERIES_SYSTEM)
        filler = filler or _identifier(observation, SCREENING_SYSTEM)
    return Checked(
        message_id,
        placer=placer,
        filler=filler,
        result_status=",".join(statuses),
        has_identity=any(_has_name(patient) for patient in patients),
        entries=tuple(types),
    )


def _instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def transaction_response(checked: Checked) -> str:
    """A transaction-response Bundle: one 201 Created per request entry, in order."""
    now = _instant()
    entries = []
    for resource_type in checked.entries:
        entries.append(
            {
                "response": {
                    "status": "201 Created",
                    "location": f"{resource_type}/{uuid.uuid4().hex}/_history/1",
                    "etag": 'W/"1"',
                    "lastModified": now,
                }
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "transaction-response",
        "timestamp": now,
        "entry": entries,
    }
    return json.dumps(bundle, ensure_ascii=False)


def operation_outcome(diagnostics: str, *, code: str = "invalid", expression: str = "") -> str:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}, ensure_ascii=False)
