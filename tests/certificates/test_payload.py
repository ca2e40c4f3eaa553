from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from relais.certificates.dcc import SCHEMA_DIR, SCHEMA_VERSION, validate_payload
from relais.certificates.errors import DccInvalid, PayloadInvalid

from . import make_payload

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "eu-dcc" / "eu-dcc-schema" / "examples" / "test"


def test_relais_payload_fields() -> None:
    payload = make_payload(detected=True)
    assert payload["ver"] == SCHEMA_VERSION
    assert payload["nam"] == {"fn": "Dupont-Lefèvre", "fnt": "DUPONT<LEFEVRE", "gn": "Zoé", "gnt": "ZOE"}
    assert payload["dob"] == "1980-01-02"
    (test,) = payload["t"]
    assert test["tg"] == "840539006"
    assert test["tt"] == "LP217198-3"
    assert test["ma"] == "1232"
    assert test["sc"] == "2024-03-01T09:10:00+00:00"
    assert test["tr"] == "260373001"
    assert test["co"] == "FR"
    assert make_payload(detected=False)["t"][0]["tr"] == "260415000"


def test_schema_version_matches_shipped_schema() -> None:
    schema = json.loads((SCHEMA_DIR / "DCC.schema.json").read_text(encoding="utf-8"))
    assert schema["$comment"] == f"Schema version {SCHEMA_VERSION}"


def test_partial_birth_date_and_single_name() -> None:
    payload = make_payload(birth_date="1964", given_name="")
    assert payload["dob"] == "1964"
    assert "gn" not in payload["nam"]


def test_naive_sampling_time_refused() -> None:
    with pytest.raises(ValueError):
        make_payload(sampled_at=datetime(2024, 3, 1, 9, 0))


def test_bad_uvci_refused() -> None:
    with pytest.raises(PayloadInvalid):
        make_payload(uvci="URN:UVCI:01:FR:ABC#A")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda p: p["nam"].update(fnt="dupont"), "$.nam.fnt"),
        (lambda p: p.update(dob="1880-01-01"), "$.dob"),
        (lambda p: p["t"][0].update(sc="2024-03-01 9h"), "$.t[0].sc"),
        (lambda p: p["t"][0].pop("ci"), "$.t[0]"),
        (lambda p: p["t"].append(dict(p["t"][0])), "$.t"),
        (lambda p: p["t"][0].update(tc="x" * 81), "$.t[0].tc"),
    ],
)
def test_schema_violations_name_the_place_not_the_value(change: Any, where: str) -> None:
    payload = make_payload()
    change(payload)
    with pytest.raises(PayloadInvalid) as info:
        validate_payload(payload)
    assert isinstance(info.value, DccInvalid) and info.value.reason == "schema"
    assert where in str(info.value)
    assert "Dupont" not in str(info.value) and "1880" not in str(info.value)


def test_too_long_names_are_cut_to_the_schema_limit() -> None:
    payload = make_payload(family_name="X" * 81, given_name="Anne " * 20)
    assert payload["nam"]["fn"] == "X" * 80 and len(payload["nam"]["gn"]) <= 80 and not payload["nam"]["gn"].endswith(" ")
    with pytest.raises(PayloadInvalid):
        validate_payload({**payload, "nam": {**payload["nam"], "fn": "X" * 81}})


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")) if EXAMPLES.is_dir() else [])
def test_schema_repository_examples_validate(name: str) -> None:
    validate_payload(json.loads((EXAMPLES / name).read_text(encoding="utf-8")))


def test_dob_is_date_only() -> None:
    assert make_payload(birth_date=date(2001, 12, 31))["dob"] == "2001-12-31"
