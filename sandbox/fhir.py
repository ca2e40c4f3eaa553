"""FHIR R4 for the sandbox: transaction Bundles, responses, OperationOutcomes, and the resources a server keeps.

A sample of bundles (``full``: the first N and one in K, see service.Sampler) is validated with fhir.resources (R4B
models, about 2 ms); every other one goes through ``fast_problem``: JSON types and element names of the Bundle, its
entries and each resource (taken once from the same fhir.resources models), list or single value, the date/time
elements. The platform's own rules (a transaction, a message id, LOINC-coded Observations with a final, corrected or
entered-in-error status; the ask-at-order-entry answers 95419-8 / 65222-2 with their value types and codes, next to
at least one result) apply to every bundle.

Conditional update (issue 16). An entry ``PUT <Type>?identifier=<system>|<value>`` must carry that identifier; the
server (``Resources``, in the sandbox's SQLite store: a restart keeps them) keeps ONE current resource per type and
identifier and every version of it (meta.versionId 1, 2, 3...): the first write creates it (201), the next ones update
it (200); an update identical to the current version adds none (the pharmacy's Organization, a patient's unchanged
Patient, the recording pharmacist's Practitioner, keyed on its idNatPs or staff account id). Any R4 resource type is
known to the checks (element names from fhir.resources, so a Practitioner's are checked like any other's). A bundle
whose DiagnosticReport is written that way is *versioned*: its test key is the report's identifier (``system|value``,
the same for every version of one test) and its version status the report's status (final;
corrected or amended; entered-in-error = removed), which every Observation must share. The store (sandbox/store.py)
keeps one record per test with its versions and refuses a correction or removal that matches no original; the refusal
is answered 422 with an OperationOutcome, and no resource is written. A bundle written only with POST (conditional
create) is stored as before, without a test record.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from sandbox.store import ResourceVersion, Store

LOINC = "http://loinc.org"
RESULT_STATUSES = ("final", "corrected", "amended", "entered-in-error")
VERSION_STATUS = {"final": "final", "corrected": "corrected", "amended": "corrected", "entered-in-error": "removed"}
PSEUDO_NAME = "ANONYME"
AOE_SYMPTOMS, AOE_ONSET = "95419-8", "65222-2"
SYMPTOM_ANSWERS = {
    ("http://terminology.hl7.org/CodeSystem/v2-0136", "Y"),
    ("http://terminology.hl7.org/CodeSystem/v2-0136", "N"),
    ("http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "UNK"),
}


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
    # The AOE answers and the kit read: (("95419-8", "Y"), ("65222-2", "2024-02-27"), ("lotNumber", "AB12"), ...).
    observations: tuple[tuple[str, str], ...] = ()
    # Versioned bundles (conditional update of the DiagnosticReport): "system|value" and final | corrected | removed.
    test_key: str = ""
    version_status: str = ""
    writes: tuple[Write, ...] = ()  # one per entry, in order


@dataclass(frozen=True)
class Write:
    """What one transaction entry asks the server to do."""

    resource_type: str
    method: str  # PUT (conditional update) or POST (create, conditional with ifNoneExist)
    key: str  # "system|value" the entry is written under ("" for a plain POST)
    resource: dict[str, Any] = field(compare=False, repr=False)


def parse_conditional(url: str, resource_type: str) -> str | None:
    """``system|value`` of ``<Type>?identifier=<system>|<value>`` (value percent-decoded); None if not that form."""
    prefix = f"{resource_type}?identifier="
    if not url.startswith(prefix):
        return None
    search = url[len(prefix) :]
    system, bar, value = search.partition("|")
    if not bar or not system or not value or "&" in search:
        return None
    return f"{unquote(system)}|{unquote(value)}"


def _carries(resource: dict[str, Any], key: str) -> bool:
    system, _, value = key.partition("|")
    return any(isinstance(i, dict) and i.get("system") == system and i.get("value") == value for i in resource.get("identifier") or [])


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


def _has_name(patient: dict[str, Any]) -> bool:
    for name in patient.get("name") or []:
        if not isinstance(name, dict):
            continue
        family = str(name.get("family") or "").strip()
        if family.upper() == PSEUDO_NAME:
            continue
        if family or any(str(given or "").strip() for given in name.get("given") or []) or str(name.get("text") or "").strip():
            return True
    return False


@functools.cache
def _elements(resource_type: str) -> dict[str, bool]:
    """Element names of a resource or backbone model (JSON name -> is a list), from fhir.resources."""
    model: Any = get_fhir_model_class(resource_type)
    return {(field.alias or name): "List[" in str(field.annotation) for name, field in model.model_fields.items()}


_DATE = re.compile(r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?")
_DATETIME = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:"
    r"([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"
)
_DATE_ELEMENTS = {
    "birthDate": _DATE,
    "effectiveDateTime": _DATETIME,
    "valueDateTime": _DATETIME,
    "occurrenceDateTime": _DATETIME,
    "expirationDate": _DATETIME,
    "issued": _DATETIME,
    "timestamp": _DATETIME,
    "receivedTime": _DATETIME,
}


def _shape_problem(data: dict[str, Any], model: str, where: str) -> tuple[str, str] | None:
    """Unknown elements, a list where one value goes (or the reverse), malformed dates: (reason, expression)."""
    elements = _elements(model)
    for key, value in data.items():
        path = f"{where}.{key}"
        if key == "resourceType":
            continue
        if key not in elements:
            return f"{path}: unknown element (extra fields not permitted)", path
        if elements[key] != isinstance(value, list):
            return f"{path}: {'a list' if elements[key] else 'a single value'} is expected", path
        if value in (None, "", [], {}):
            return f"{path}: empty elements are not allowed in FHIR", path
        pattern = _DATE_ELEMENTS.get(key)
        if pattern is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
            return f"{path}: {str(value)[:40]!r} is not a valid FHIR date/time", path
    return None


def fast_problem(data: dict[str, Any]) -> tuple[str, str] | None:
    """The checks of a full fhir.resources validation that matter to the platform, on plain JSON: element names and
    cardinality of the Bundle, its entries, their requests and resources, and the date/time elements."""
    problem = _shape_problem(data, "Bundle", "Bundle")
    if problem:
        return problem
    for index, entry in enumerate(data.get("entry") or []):
        where = f"Bundle.entry[{index}]"
        if not isinstance(entry, dict):
            return f"{where}: an entry must be an object", where
        problem = _shape_problem(entry, "BundleEntry", where)
        if problem:
            return problem
        request, resource = entry.get("request"), entry.get("resource")
        if isinstance(request, dict):
            problem = _shape_problem(request, "BundleEntryRequest", f"{where}.request")
            if problem:
                return problem
            if request.get("method") not in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH") or not isinstance(request.get("url"), str):
                return f"{where}.request: method and url are required", f"{where}.request"
        elif request is not None:
            return f"{where}.request must be an object", f"{where}.request"
        if isinstance(resource, dict):
            problem = _shape_problem(resource, str(resource.get("resourceType")), f"{where}.resource")
            if problem:
                return problem
        elif resource is not None:
            return f"{where}.resource must be an object", f"{where}.resource"
    return None


def check_bundle(body: bytes, *, full: bool = True) -> Checked:
    """Validate a FHIR transaction Bundle against the platform's contract; ``full``: with fhir.resources."""
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
    if full:
        try:
            Bundle.model_validate(data)
        except ValidationError as exc:
            reason, expression = _describe(exc)
            return Checked(message_id, reason, expression)
        except (KeyError, TypeError, ValueError) as exc:
            return Checked(message_id, f"Bundle: not a valid FHIR R4 Bundle: {exc}", "Bundle")
    else:
        fast = fast_problem(data)
        if fast is not None:
            return Checked(message_id, fast[0], fast[1])

    if data.get("type") != "transaction":
        return Checked(message_id, f"Bundle.type must be 'transaction', got {data.get('type')!r}", "Bundle.type")
    if not message_id:
        return Checked(message_id, "Bundle.identifier.value (the message id) is missing", "Bundle.identifier.value")
    observations: list[tuple[int, dict[str, Any]]] = []
    patients: list[dict[str, Any]] = []
    types: list[str] = []
    writes: list[Write] = []
    reports: list[tuple[int, dict[str, Any], Write]] = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        if not resource:
            return Checked(message_id, f"Bundle.entry[{index}].resource is missing", f"Bundle.entry[{index}].resource")
        request = entry.get("request")
        if not request:
            return Checked(message_id, f"Bundle.entry[{index}].request is required in a transaction", f"Bundle.entry[{index}].request")
        resource_type = str(resource["resourceType"])
        where = f"Bundle.entry[{index}].request"
        write = _write(request, resource, resource_type)
        if isinstance(write, str):
            return Checked(message_id, f"{where}: {write}", f"{where}.url")
        writes.append(write)
        types.append(resource_type)
        if resource_type == "DiagnosticReport":
            reports.append((index, resource, write))
        if resource_type == "Observation":
            observations.append((index, resource))
        elif resource_type == "Patient":
            patients.append(resource)
    if not observations:
        return Checked(message_id, "Bundle.entry: no Observation (at least one carries the test result)", "Bundle.entry")
    statuses: list[str] = []
    placer = filler = ""
    answers: list[tuple[str, str]] = []
    for index, observation in observations:
        where = f"Bundle.entry[{index}].resource"
        code = observation.get("code")
        codings = (code.get("coding") if isinstance(code, dict) else None) or []
        if not any(isinstance(c, dict) and c.get("system") == LOINC and c.get("code") for c in codings):
            return Checked(message_id, f"{where}.code: Observation.code has no LOINC coding (system {LOINC})", f"{where}.code.coding")
        loinc = next(str(c["code"]) for c in codings if isinstance(c, dict) and c.get("system") == LOINC and c.get("code"))
        if loinc in (AOE_SYMPTOMS, AOE_ONSET):
            answer = _aoe_answer(loinc, observation, where)
            if isinstance(answer, tuple):
                return Checked(message_id, answer[0], answer[1])
            answers.append((loinc, answer))
        status = observation.get("status")
        if status not in RESULT_STATUSES:
            return Checked(
                message_id,
                f"{where}.status: must be final, corrected, amended or entered-in-error, got {status!r}",
                f"{where}.status",
            )
        if status not in statuses:
            statuses.append(status)
        # A bundle from before conditional updates: the version's and the series' ids on each Observation.
        placer = placer or _identifier_ending(observation, "/series")
        filler = filler or _identifier_ending(observation, "/screening")
    if len(answers) == len(observations):
        return Checked(message_id, "Bundle.entry: no Observation carries a test result (only ask-at-order-entry answers)", "Bundle.entry")
    if any(code == AOE_ONSET for code, _ in answers) and (AOE_SYMPTOMS, "Y") not in answers:
        return Checked(message_id, f"Bundle.entry: a symptom onset ({AOE_ONSET}) without symptoms ({AOE_SYMPTOMS} = Y)", "Bundle.entry")
    for entry in entries:
        resource = entry["resource"]
        if resource["resourceType"] == "Device":
            answers += [(name, str(resource[name])) for name in ("lotNumber", "expirationDate") if resource.get(name)]
    test_key = version_status = ""
    versioned = [(index, report, write) for index, report, write in reports if write.method == "PUT"]
    if len(versioned) > 1:
        return Checked(message_id, "Bundle.entry: more than one DiagnosticReport written by conditional update", "Bundle.entry")
    if versioned:
        index, report, write = versioned[0]
        where = f"Bundle.entry[{index}].resource.status"
        version_status = VERSION_STATUS.get(str(report.get("status")), "")
        if not version_status:
            return Checked(
                message_id, f"{where}: must be final, corrected, amended or entered-in-error, got {report.get('status')!r}", where
            )
        disagreeing = [status for status in statuses if VERSION_STATUS[status] != version_status]
        if disagreeing:
            reason = f"{where}: the report is {report['status']!r} but an Observation is {disagreeing[0]!r} (one version, one status)"
            return Checked(message_id, reason, where)
        test_key = write.key
        placer = filler = write.key.partition("|")[2]
    return Checked(
        message_id,
        placer=placer,
        filler=filler,
        result_status=",".join(statuses),
        has_identity=any(_has_name(patient) for patient in patients),
        entries=tuple(types),
        observations=tuple(answers),
        test_key=test_key,
        version_status=version_status,
        writes=tuple(writes),
    )


def _identifier_ending(resource: dict[str, Any], suffix: str) -> str:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and str(identifier.get("system") or "").endswith(suffix) and identifier.get("value"):
            return str(identifier["value"])
    return ""


def _write(request: Any, resource: dict[str, Any], resource_type: str) -> Write | str:
    """The entry's request as a Write, or why the server refuses it."""
    if not isinstance(request, dict):
        return "must be an object"
    method, url = request.get("method"), str(request.get("url") or "")
    if method == "POST":
        if url != resource_type:
            return f"POST url must be {resource_type!r}, got {url[:60]!r}"
        condition = request.get("ifNoneExist")
        key = parse_conditional(f"{resource_type}?{condition}", resource_type) if condition else ""
        return Write(resource_type, "POST", key or "", resource)
    if method == "PUT":
        key = parse_conditional(url, resource_type)
        if key is None:
            return f"PUT needs a conditional url {resource_type}?identifier=<system>|<value>, got {url[:80]!r}"
        if not _carries(resource, key):
            return f"the {resource_type} does not carry the identifier it is written under ({key[:80]})"
        return Write(resource_type, "PUT", key, resource)
    return f"method must be POST or PUT, got {method!r}"


def _aoe_answer(loinc: str, observation: dict[str, Any], where: str) -> str | tuple[str, str]:
    """The answer of an AOE Observation (its code, or the onset date), or (problem, expression)."""
    if loinc == AOE_ONSET:
        value = observation.get("valueDateTime")
        if not isinstance(value, str) or not _DATETIME.fullmatch(value):
            return f"{where}.valueDateTime: {AOE_ONSET} (symptom onset) takes a valueDateTime", f"{where}.valueDateTime"
        return value
    concept = observation.get("valueCodeableConcept")
    codings = (concept.get("coding") if isinstance(concept, dict) else None) or []
    for coding in codings:
        if isinstance(coding, dict) and (coding.get("system"), coding.get("code")) in SYMPTOM_ANSWERS:
            return str(coding["code"])
    return (
        f"{where}.valueCodeableConcept: {AOE_SYMPTOMS} takes Y or N (v2-0136) or UNK (v3-NullFlavor)",
        f"{where}.valueCodeableConcept",
    )


def now() -> str:
    return _instant()


def _instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    """The server's answer to one entry: HTTP status, resource id and its version after the write."""

    status: str  # "201 Created" | "200 OK"
    resource_type: str
    resource_id: str
    version: int
    # Set by Resources.plan for new_versions: the entry writes a new version (created or changed), and the resource's
    # canonical content (computed once: the JSON dumps were a third of the sandbox's CPU per bundle).
    writes_version: bool = field(default=False, compare=False)
    content: str = field(default="", compare=False, repr=False)


class Resources:
    """What a FHIR server keeps: one current resource per (type, identifier) and every version of it, in the sandbox's
    store (table fhir_resources), so a restart keeps them and a reset clears them.

    ``plan`` says what a transaction would do without doing it; ``new_versions`` gives the versions it writes, which
    go into the store in the same transaction as the message (Accepted.resource_versions): a refused or duplicate
    bundle writes none. Hold ``lock`` across plan, new_versions and the store."""

    def __init__(self, store: Store) -> None:
        self.lock = threading.RLock()
        self.store = store

    def plan(self, writes: tuple[Write, ...]) -> list[Outcome]:
        with self.lock:
            outcomes = []
            for write in writes:
                known = self.store.resource_head(write.resource_type, write.key) if write.key else None
                content = _content(write.resource) if write.key else ""
                if known and (write.method == "POST" or known.content == content):
                    # A conditional create that matched, or an update with nothing new: no new version (as HAPI does).
                    outcomes.append(Outcome("200 OK", write.resource_type, known.resource_id, known.versions))
                elif known:
                    outcomes.append(Outcome("200 OK", write.resource_type, known.resource_id, known.versions + 1, True, content))
                else:
                    outcomes.append(Outcome("201 Created", write.resource_type, uuid.uuid4().hex, 1, True, content))
            return outcomes

    def new_versions(self, writes: tuple[Write, ...], outcomes: list[Outcome], *, when: str) -> tuple[ResourceVersion, ...]:
        """The resource versions the planned writes create (none for an unchanged resource or a plain POST)."""
        with self.lock:
            created: list[ResourceVersion] = []
            written: set[tuple[str, str]] = set()
            for write, outcome in zip(writes, outcomes, strict=True):
                if not write.key or not outcome.writes_version or (write.resource_type, write.key) in written:
                    continue  # a plain POST (nobody can find it again by identifier), unchanged, or written already in this bundle
                written.add((write.resource_type, write.key))
                # Only top-level keys change: a shallow copy keeps the request's resource as it was.
                resource = {**write.resource, "id": outcome.resource_id}
                resource["meta"] = {**(write.resource.get("meta") or {}), "versionId": str(outcome.version), "lastUpdated": when}
                created.append(
                    ResourceVersion(
                        resource_type=write.resource_type,
                        identifier=write.key,
                        version=outcome.version,
                        resource_id=outcome.resource_id,
                        content=outcome.content,
                        resource=json.dumps(resource, ensure_ascii=False),
                    )
                )
            return tuple(created)

    def current(self, resource_type: str, key: str) -> dict[str, Any] | None:
        versions = self.store.resource_history(resource_type, key)
        return versions[-1] if versions else None

    def history(self, resource_type: str, key: str) -> list[dict[str, Any]]:
        return self.store.resource_history(resource_type, key)

    def summary(self) -> list[dict[str, Any]]:
        """Every current resource: type, identifier, id, number of versions, status (control API)."""
        return self.store.resource_summary()


def _content(resource: dict[str, Any]) -> str:
    return json.dumps(resource, sort_keys=True, ensure_ascii=False)


def transaction_response(checked: Checked, outcomes: list[Outcome] | None = None) -> str:
    """A transaction-response Bundle: one entry per request, in order (201 Created, or 200 OK for an update)."""
    now = _instant()
    if outcomes is None:
        outcomes = [Outcome("201 Created", resource_type, uuid.uuid4().hex, 1) for resource_type in checked.entries]
    entries = [
        {
            "response": {
                "status": outcome.status,
                "location": f"{outcome.resource_type}/{outcome.resource_id}/_history/{outcome.version}",
                "etag": f'W/"{outcome.version}"',
                "lastModified": now,
            }
        }
        for outcome in outcomes
    ]
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
