"""Unique certificate identifiers (UVCI), eHealth Network guidelines Annex 2, with the Luhn mod N check character."""

from __future__ import annotations

import base64
import re
import secrets

PREFIX = "URN:UVCI:"
VERSION = "01"
# Code points for Luhn mod N, as fixed by the eu-dcc-schema FAQ ("UVCI checksum"); '#' only separates the check character.
CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:"
_CODE = {char: index for index, char in enumerate(CHARSET)}
_N = len(CHARSET)
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ISSUER_PREFIX = re.compile(r"^[A-Z0-9]{0,12}$")


def check_character(body: str) -> str:
    """Luhn mod N check character over `body` (prefix included when present)."""
    factor = 2
    total = 0
    for char in reversed(body):
        addend = factor * _CODE[char]
        factor = 1 if factor == 2 else 2
        total += addend // _N + addend % _N
    return CHARSET[(_N - total % _N) % _N]


def new_uvci(*, country: str = "FR", issuer_prefix: str = "RELAIS") -> str:
    """URN:UVCI:01:<country>:<issuer_prefix><26 random base32 characters>#<check>, 'option 2' (no semantics)."""
    if not _COUNTRY.match(country):
        raise ValueError("country must be two uppercase letters")
    if not _ISSUER_PREFIX.match(issuer_prefix):
        raise ValueError("issuer_prefix must be at most 12 uppercase letters or digits")
    # 128 random bits: collisions are negligible without a central register.
    opaque = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")
    body = f"{PREFIX}{VERSION}:{country}:{issuer_prefix}{opaque}"
    return f"{body}#{check_character(body)}"


def uvci_checksum_valid(uvci: str) -> bool:
    """True when `uvci` ends with '#' and the right check character; identifiers without one are not accepted."""
    body, sep, check = uvci.rpartition("#")
    if not sep or len(check) != 1 or not body or any(char not in _CODE for char in body):
        return False
    return check_character(body) == check
