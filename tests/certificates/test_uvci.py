from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relais.certificates.uvci import CHARSET, check_character, new_uvci, uvci_checksum_valid

UVCI_FORMAT = re.compile(r"^URN:UVCI:01:FR:[A-Z0-9]+#[A-Z0-9/:]$")


def test_reference_example_from_the_schema_faq() -> None:
    # Published with the Luhn mod N code points ("UVCI checksum" in the eu-dcc-schema FAQ).
    assert uvci_checksum_valid("URN:UVCI:01:NL:187/37512422923#Z")
    assert not uvci_checksum_valid("URN:UVCI:01:NL:187/37512422923#Y")


def test_new_uvci_format_and_uniqueness() -> None:
    uvcis = {new_uvci() for _ in range(200)}
    assert len(uvcis) == 200
    for uvci in uvcis:
        assert UVCI_FORMAT.match(uvci), uvci
        assert uvci_checksum_valid(uvci)
        assert len(uvci) <= 80  # schema certificate_id maxLength


def test_new_uvci_options() -> None:
    uvci = new_uvci(country="BE", issuer_prefix="PH75")
    assert uvci.startswith("URN:UVCI:01:BE:PH75")
    assert uvci_checksum_valid(uvci)
    with pytest.raises(ValueError):
        new_uvci(country="fr")
    with pytest.raises(ValueError):
        new_uvci(issuer_prefix="bad/prefix")


@pytest.mark.parametrize("text", ["", "#", "URN:UVCI:01:FR:ABC", "URN:UVCI:01:FR:ABC#", "URN:UVCI:01:FR:ABC#AB", "urn:uvci:01:fr:abc#A"])
def test_malformed_is_invalid(text: str) -> None:
    assert not uvci_checksum_valid(text)


@given(st.data())
def test_any_single_character_change_is_detected(data: st.DataObject) -> None:
    uvci = new_uvci()
    index = data.draw(st.sampled_from([i for i, char in enumerate(uvci) if char != "#"]))
    replacement = data.draw(st.sampled_from([char for char in CHARSET if char != uvci[index]]))
    changed = uvci[:index] + replacement + uvci[index + 1 :]
    assert not uvci_checksum_valid(changed)


@given(st.text(alphabet=CHARSET, min_size=1, max_size=60))
def test_check_character_makes_any_body_valid(body: str) -> None:
    assert uvci_checksum_valid(f"{body}#{check_character(body)}")
