from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relais.certificates import base45


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0"), (b"", "")],
)
def test_rfc9285_examples(raw: bytes, encoded: str) -> None:
    assert base45.encode(raw) == encoded
    assert base45.decode(encoded) == raw


@pytest.mark.parametrize("bad", ["GGW", "A", "ABCD", "aBC", "AB=", ":::"])
def test_invalid_input_is_rejected(bad: str) -> None:
    with pytest.raises(base45.Base45Error):
        base45.decode(bad)


@given(st.binary(max_size=300))
def test_round_trip(data: bytes) -> None:
    text = base45.encode(data)
    assert set(text) <= set(base45.ALPHABET)
    assert base45.decode(text) == data
