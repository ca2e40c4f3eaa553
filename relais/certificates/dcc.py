"""DCC test-certificate payloads (schema 1.3.x): building and JSON-schema validation."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from relais.certificates.errors import CannotIssue, PayloadInvalid
from relais.certificates.transliteration import transliterate, untransliterable
from relais.certificates.uvci import new_uvci, uvci_checksum_valid

__all__ = ["SCHEMA_VERSION", "build_test_payload", "new_uvci", "transliterate", "uvci_checksum_valid", "validate_payload"]

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
SCHEMA_VERSION = "1.3.3"  # the version of the schema files shipped in schema/

DISEASE_COVID19 = "840539006"  # SNOMED CT, value set disease-agent-targeted
TEST_TYPE_RAT = "LP217198-3"  # LOINC rapid immunoassay, value set covid-19-lab-test-type
RESULT_DETECTED = "260373001"  # SNOMED CT, value set covid-19-lab-result
RESULT_NOT_DETECTED = "260415000"

# RFC 3339 date-time, the meaning of the schema's "format": "date-time".
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@cache
def _validator() -> Draft202012Validator:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("DCC*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    registry: Registry[Any] = Registry().with_resources(resources)
    root = json.loads((SCHEMA_DIR / "DCC.schema.json").read_text(encoding="utf-8"))
    # Only date-time is checked: jsonschema would otherwise skip it silently without rfc3339-validator.
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_date_time)
    return Draft202012Validator(root, registry=registry, format_checker=checker)


def validate_payload(payload: dict[str, Any]) -> None:
    """Raise PayloadInvalid naming the failing location and rule (never the value) if `payload` breaks the schema."""
    errors = sorted(_validator().iter_errors(payload), key=lambda error: list(error.path))
    if errors:
        first = errors[0]
        where = first.json_path
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PayloadInvalid(f"{where} fails schema rule '{first.validator}'{more}")


NAME_MAX = 80  # schema maxLength of fn and gn
DOB_PATTERN = re.compile(r"^((19|20)\d\d(-\d\d){0,2}){0,1}$")  # DCC.schema.json "dob": 1900 to 2099 only


def check_issuable(
    *, family_name: str, given_name: str, birth_date: date | str, latin_family_name: str = "", latin_given_name: str = ""
) -> None:
    """Raise CannotIssue naming the field when an accepted identity cannot be carried faithfully by a DCC."""
    dob = birth_date.isoformat() if isinstance(birth_date, date) else birth_date
    if not DOB_PATTERN.match(dob):
        raise CannotIssue("birth_date_range")
    # A standardised name missing letters would not match the holder's travel document: refuse rather than guess, unless
    # the pharmacist copied the Latin spelling from the passport's machine-readable zone.
    if family_name and untransliterable(family_name) and not transliterate(latin_family_name):
        raise CannotIssue("family_name_script")
    if given_name and untransliterable(given_name) and not transliterate(latin_given_name):
        raise CannotIssue("given_name_script")


def standardised(name: str, latin: str = "") -> str:
    """fnt/gnt: the passport's Latin spelling when recorded (it is what the travel document says), else the ICAO 9303
    transliteration of the name."""
    return transliterate(latin) if transliterate(latin) else transliterate(name)


def _fit(name: str) -> str:
    """Names longer than the schema allows are cut at a word boundary when there is one (long multiple first names)."""
    name = " ".join(name.split())
    if len(name) <= NAME_MAX:
        return name
    cut = name[:NAME_MAX]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def build_test_payload(
    *,
    family_name: str,
    given_name: str,
    birth_date: date | str,
    device_id: str,
    sampled_at: datetime,
    detected: bool,
    testing_centre: str,
    issuer: str,
    uvci: str,
    country: str = "FR",
    latin_family_name: str = "",
    latin_given_name: str = "",
) -> dict[str, Any]:
    """A validated DCC payload for one rapid antigen test; a str birth_date allows 'YYYY' or 'YYYY-MM'.

    Raises CannotIssue for an identity the format cannot carry, PayloadInvalid for anything else the schema refuses."""
    if sampled_at.utcoffset() is None:
        raise ValueError("sampled_at must be timezone-aware")
    check_issuable(
        family_name=family_name,
        given_name=given_name,
        birth_date=birth_date,
        latin_family_name=latin_family_name,
        latin_given_name=latin_given_name,
    )
    if not uvci_checksum_valid(uvci):
        raise PayloadInvalid("$.t[0].ci is not a UVCI with a valid check character")
    name: dict[str, str] = {}
    if family_name:
        name |= {"fn": _fit(family_name), "fnt": standardised(family_name, latin_family_name)}
    if given_name:
        name |= {"gn": _fit(given_name), "gnt": standardised(given_name, latin_given_name)}
    # Never an empty standardised family name: the schema's pattern lets "" pass, the specification does not.
    if not name.get("fnt"):
        raise CannotIssue("family_name_script")
    if given_name and not name.get("gnt"):
        raise CannotIssue("given_name_script")
    test = {
        "tg": DISEASE_COVID19,
        "tt": TEST_TYPE_RAT,
        "ma": device_id,
        "sc": sampled_at.astimezone(UTC).replace(microsecond=0).isoformat(),  # an offset in seconds is no RFC 3339
        "tr": RESULT_DETECTED if detected else RESULT_NOT_DETECTED,
        "tc": testing_centre,
        "co": country,
        "is": issuer,
        "ci": uvci,
    }
    dob = birth_date.isoformat() if isinstance(birth_date, date) else birth_date
    payload: dict[str, Any] = {"ver": SCHEMA_VERSION, "nam": name, "dob": dob, "t": [test]}
    check_shape(payload)
    return payload


_STANDARDISED = re.compile(r"^[A-Z<]{0,80}$")  # DCC.schema.json "fnt"/"gnt"


def check_shape(payload: dict[str, Any]) -> None:
    """The schema rules a built payload could break, checked in microseconds on every certificate.

    The full JSON-schema validation (validate_payload, ~1 ms) is proven against build_test_payload by the test suite
    (tests/certificates/test_payload_property.py) instead of repeated for every certificate on the intake path."""
    name = payload["nam"]
    for plain, standard in (("fn", "fnt"), ("gn", "gnt")):
        if plain in name and len(name[plain]) > NAME_MAX:
            raise PayloadInvalid(f"$.nam.{plain} fails schema rule 'maxLength'")
        if standard in name and not _STANDARDISED.match(name[standard]):
            raise PayloadInvalid(f"$.nam.{standard} fails schema rule 'pattern'")
    if "fnt" not in name and "gnt" not in name:
        raise PayloadInvalid("$.nam fails schema rule 'anyOf'")
    test = payload["t"][0]
    if not _is_date_time(test["sc"]):
        raise PayloadInvalid("$.t[0].sc fails schema rule 'format'")
    for key in ("tc", "is", "ci"):
        if len(test[key]) > NAME_MAX:
            raise PayloadInvalid(f"$.t[0].{key} fails schema rule 'maxLength'")
