from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from relais.core import validators


def nir_with_key(body: str) -> str:
    number = int(body.replace("2A", "19").replace("2B", "18"))
    return f"{body}{97 - number % 97:02d}"


nir_bodies = st.builds(
    lambda sex, year, month, dept, commune, order: f"{sex}{year:02d}{month:02d}{dept}{commune:03d}{order:03d}",
    st.sampled_from("12"),
    st.integers(0, 99),
    st.integers(1, 12),
    st.sampled_from(["75", "69", "13", "2A", "2B", "99"]),
    st.integers(1, 990),
    st.integers(1, 999),
)


@given(nir_bodies)
def test_every_valid_nir_is_accepted(body: str) -> None:
    assert validators.nir_normalise(nir_with_key(body)) == nir_with_key(body)


@given(nir_bodies, st.integers(0, 14), st.integers(1, 9))
def test_a_mistyped_digit_is_refused(body: str, position: int, delta: int) -> None:
    nir = nir_with_key(body)
    if not nir[position].isdigit():
        return
    typo = nir[:position] + str((int(nir[position]) + delta) % 10) + nir[position + 1 :]
    with pytest.raises(ValidationError):
        validators.nir_normalise(typo)


@given(st.text(max_size=40))
def test_validators_never_crash_on_garbage(text: str) -> None:
    for check in (validators.nir_normalise, validators.finess_normalise, validators.phone_normalise, validators.email_normalise):
        try:
            check(text)
        except ValidationError:
            pass


def test_nir_messages_say_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="15"):
        validators.nir_normalise("29403751200059")
    with pytest.raises(ValidationError, match="key"):
        validators.nir_normalise("294037512000592")
    assert validators.nir_normalise("2 94 03 75 120 005 91") == "294037512000591"


def test_corsican_nir() -> None:
    assert validators.nir_normalise(nir_with_key("185012A001002")) == nir_with_key("185012A001002")


def test_nir_must_match_sex_and_birth_year() -> None:
    validators.nir_matches_identity("294037512000591", sex="F", date_of_birth=date(1994, 3, 12))
    with pytest.raises(ValidationError, match="sex"):
        validators.nir_matches_identity("294037512000591", sex="M", date_of_birth=date(1994, 3, 12))
    with pytest.raises(ValidationError, match="year"):
        validators.nir_matches_identity("294037512000591", sex="F", date_of_birth=date(1995, 3, 12))


def test_finess() -> None:
    assert validators.finess_normalise("75 000 001 0") == "750000010"
    with pytest.raises(ValidationError, match="check digit"):
        validators.finess_normalise("750000011")
    with pytest.raises(ValidationError, match="9 characters"):
        validators.finess_normalise("7500")


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("+32 470 12 34 56", "+32470123456"),
    ],
)
def test_phone_normalised_to_e164(raw: str, e164: str) -> None:
    assert validators.phone_normalise(raw) == e164


def test_bad_phone_is_explained() -> None:
    with pytest.raises(ValidationError, match="digits"):
        validators.phone_normalise("06 12 34")


def test_country_and_postcode() -> None:
    assert validators.country_normalise("fr") == "FR"
    with pytest.raises(ValidationError):
        validators.country_normalise("XX")
    with pytest.raises(ValidationError, match="5 digits"):
        validators.postcode_normalise("7500", country="FR")
    assert validators.postcode_normalise("SW1A 1AA", country="GB") == "SW1A 1AA"
