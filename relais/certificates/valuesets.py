"""The EU DCC value sets: the coded fields of a payload checked against them (dcc_verify's last step).

A value set file is the eu-dcc-valuesets JSON ({"valueSetId": ..., "valueSetValues": {code: {...}}}); a directory is
read by valueSetId, so a copy with the repository's other file names (test-manf.json) reads the same."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from relais.certificates.errors import DccInvalid

BUNDLED = Path(__file__).resolve().parent / "valuesets"

DISEASE = "disease-agent-targeted"
TEST_TYPE = "covid-19-lab-test-type"
TEST_MANUFACTURER = "covid-19-lab-test-manufacturer-and-name"
TEST_RESULT = "covid-19-lab-result"
COUNTRY = "country-2-codes"

# The coded fields of each kind of entry and their value set. A vaccination's or recovery's other codes (vp, mp, ma of a
# vaccine) have value sets Relais does not ship: only the ones shared with tests are checked there.
FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "t": (("tg", DISEASE), ("tt", TEST_TYPE), ("ma", TEST_MANUFACTURER), ("tr", TEST_RESULT), ("co", COUNTRY)),
    "v": (("tg", DISEASE), ("co", COUNTRY)),
    "r": (("tg", DISEASE), ("co", COUNTRY)),
}
REQUIRED = (DISEASE, TEST_TYPE, TEST_MANUFACTURER, TEST_RESULT, COUNTRY)


class ValueSetsMissing(ValueError):
    pass


@dataclass(frozen=True)
class ValueSets:
    codes: dict[str, frozenset[str]]  # valueSetId -> codes
    names: dict[str, str]  # valueSetId -> the file's name without .json and "-example" (test-type, test-manf...)


@cache
def load(directory: Path = BUNDLED) -> ValueSets:
    codes: dict[str, frozenset[str]] = {}
    names: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "valueSetId" not in data or not isinstance(data.get("valueSetValues"), dict):
            continue
        codes[data["valueSetId"]] = frozenset(data["valueSetValues"])
        names[data["valueSetId"]] = path.stem.removesuffix("-example")
    missing = [value_set for value_set in REQUIRED if value_set not in codes]
    if missing:
        raise ValueSetsMissing(f"{directory}: no value set {', '.join(missing)}")
    return ValueSets(codes=codes, names=names)


def check_value_sets(payload: dict[str, Any], value_sets: ValueSets) -> None:
    """DccInvalid("value_set", "tt=XX not in test-type") for the first coded field outside its value set."""
    for kind, fields in FIELDS.items():
        for entry in payload.get(kind) or []:
            if not isinstance(entry, dict):
                continue
            for field, value_set in fields:
                if field in entry and str(entry[field]) not in value_sets.codes[value_set]:
                    name = value_sets.names.get(value_set, value_set)
                    raise DccInvalid("value_set", f"{field}={_shown(entry[field])} not in {name}")


def _shown(value: object) -> str:
    """A code as received, cut and printable (no personal data: coded fields only)."""
    text = str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text[:40])
