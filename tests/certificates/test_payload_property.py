"""The full DCC JSON schema, proven against the payload builder instead of run on every certificate (issue 13).

build_test_payload checks only the rules a built payload could break (check_shape, microseconds); these properties show
that whatever identity, test and centre the intake accepts, its payload passes the whole schema, and that check_shape
refuses what the schema refuses among the fields the builder fills from input."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.certificates import base45
from relais.certificates.dcc import build_test_payload, check_shape, validate_payload
from relais.certificates.errors import CannotIssue, PayloadInvalid
from relais.certificates.uvci import new_uvci

# Names as pharmacies type them: Latin with diacritics, apostrophes, hyphens, spaces, and other scripts.
LETTERS = st.characters(categories=("Lu", "Ll", "Lo", "Mn"), exclude_characters="\x00")
NAME = st.text(alphabet=st.one_of(LETTERS, st.sampled_from(" -'’.")), min_size=0, max_size=120)
WHEN = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))
BIRTH = st.one_of(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(1900, 2099).map(str),
    st.tuples(st.integers(1900, 2099), st.integers(1, 12)).map(lambda ym: f"{ym[0]}-{ym[1]:02d}"),
)


def _build(**fields: Any) -> dict[str, Any] | None:
    try:
        return build_test_payload(issuer="Relais", uvci=new_uvci(), country="FR", **fields)
    except CannotIssue:
        return None  # an identity the format cannot carry: refused with its reason, no certificate


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    family=NAME,
    given_name=NAME,
    birth=BIRTH,
    sampled=WHEN,
    detected=st.booleans(),
    centre=st.text(max_size=80),
    device=st.sampled_from(["1232", "1457", "344", "2010"]),
)
def test_every_built_payload_passes_the_whole_schema(
    family: str, given_name: str, birth: Any, sampled: datetime, detected: bool, centre: str, device: str
) -> None:
    try:
        payload = _build(
            family_name=family,
            given_name=given_name,
            birth_date=birth,
            device_id=device,
            sampled_at=sampled,
            detected=detected,
            testing_centre=centre,
        )
    except PayloadInvalid:
        # check_shape refuses one thing a built payload can lack: any name (the schema's anyOf fnt/gnt; the intake
        # never sends it, a last name is required).
        assert not family and not given_name
        return
    if payload is not None:
        validate_payload(payload)


MUTATIONS = [
    lambda p: p["nam"].update(fnt="dupont"),
    lambda p: p["nam"].update(gnt="ZO É"),
    lambda p: p["nam"].update(fn="X" * 81),
    lambda p: p["nam"].update(gn="X" * 81),
    lambda p: p["nam"].update(fnt="X" * 81),
    lambda p: p.update(nam={}),
    lambda p: p["t"][0].update(sc="2024-03-01 9h"),
    lambda p: p["t"][0].update(sc="2024-13-01T09:00:00Z"),
    lambda p: p["t"][0].update(tc="x" * 81),
    lambda p: p["t"][0].update(ci="U" * 81),
    lambda p: p["t"][0].update(**{"is": "I" * 81}),
]


@pytest.mark.parametrize("mutate", MUTATIONS)
def test_check_shape_refuses_what_the_schema_refuses(mutate: Any) -> None:
    payload = build_test_payload(
        family_name="Dupont",
        given_name="Zoé",
        birth_date=date(1980, 1, 2),
        device_id="1232",
        sampled_at=datetime.now(UTC) - timedelta(minutes=5),
        detected=False,
        testing_centre="Pharmacie",
        issuer="Relais",
        uvci=new_uvci(),
    )
    changed = copy.deepcopy(payload)
    mutate(changed)
    with pytest.raises(PayloadInvalid):
        validate_payload(changed)
    with pytest.raises(PayloadInvalid):
        check_shape(changed)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_base45_table_encoder_round_trips(data: bytes) -> None:
    assert base45.decode(base45.encode(data)) == data
