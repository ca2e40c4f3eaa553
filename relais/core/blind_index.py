"""HMAC blind indexes: exact-match search on encrypted fields without storing plaintext.

The pharmacy id is part of the input, so the same person at two pharmacies cannot be linked.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import unicodedata
from collections.abc import Callable
from datetime import date

from django.conf import settings

from relais.core.secrets import decode_key

# Marks are dropped where they are accents or optional vowel signs (É = E, Ά = Α, مُحَمَّد = محمد); elsewhere they make
# another letter or syllable (й ≠ и, नमस्ते) and are kept.
_FOLD_MARKS_AFTER = ("LATIN", "GREEK", "ARABIC", "HEBREW")


def normalise_name(value: str) -> str:
    """Letters of every script, case-folded, accents removed: 'Durand-Testeur', 'DURAND TESTEUR' and 'Durând testeur'
    index alike, 'Иванов' and 'Петрова' do not. Empty when the value holds no letter at all."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    kept: list[str] = []
    base_script = ""
    for ch in unicodedata.normalize("NFD", folded):
        if unicodedata.category(ch).startswith("M"):
            if base_script and base_script not in _FOLD_MARKS_AFTER:  # a mark on a dropped character goes with it
                kept.append(ch)
            continue
        if ch.isalpha():
            kept.append(ch)
            base_script = unicodedata.name(ch, "").split(" ", 1)[0]
        else:
            base_script = ""
    return unicodedata.normalize("NFC", "".join(kept))


def _hmac(purpose: str, pharmacy_id: object, *parts: str) -> str:
    key = decode_key("RELAIS_BLIND_INDEX_KEY", settings.RELAIS_BLIND_INDEX_KEY)
    message = "\x1f".join([purpose, str(pharmacy_id), *parts]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def nir_index(*, pharmacy_id: object, nir: str) -> str:
    return _hmac("nir", pharmacy_id, nir.replace(" ", "").upper())


def name_dob_index(*, pharmacy_id: object, last_name: str, date_of_birth: date) -> str:
    return _hmac("name-dob", pharmacy_id, normalise_name(last_name), date_of_birth.isoformat())


def identity_index(*, pharmacy_id: object, last_name: str, first_names: str, date_of_birth: date) -> str:
    first = normalise_name(first_names.split()[0] if first_names.split() else "")
    return _hmac("identity", pharmacy_id, normalise_name(last_name), first, date_of_birth.isoformat())


def patient_pseudonym(*, pharmacy_id: object, patient_id: object, destination: str = "") -> str:
    """A stable id for messages without identity: same patient, same pseudonym; not reversible.

    With ``destination`` (the receiving destination's name) each receiver gets its own pseudonym, under the same key but
    another HMAC input: two receivers cannot link their records of one patient, and the pseudonym an anonymous
    destination receives never appears in another destination's (identified) messages. Without it: the per-pharmacy
    pseudonym of before issue 16, kept for reading old records only."""
    if destination:
        return _hmac("pseudonym-destination", pharmacy_id, destination, str(patient_id))[:32]
    return _hmac("pseudonym", pharmacy_id, str(patient_id))[:32]


# Search indexes (issue 15), CipherSweet style: HMAC under a per-pharmacy key derived from RELAIS_BLIND_INDEX_KEY, cut
# to SEARCH_INDEX_BITS so equal values collide with others and a stolen table tells little.
# 16 bits: a busy pharmacy keeps <= ~30,000 identities (3-6 months' retention), so a lookup decrypts its true matches plus
# <= ~0.5 strangers on average, and with the key a list of ~200,000 surnames still leaves ~3 names per value.
SEARCH_INDEX_BITS = 16


@functools.lru_cache(maxsize=256)
def _search_key(secret: str, pharmacy_id: str) -> bytes:
    return hmac.new(decode_key("RELAIS_BLIND_INDEX_KEY", secret), f"search-key\x1f{pharmacy_id}".encode(), hashlib.sha256).digest()


def search_indexer(pharmacy_id: object, *, bits: int = SEARCH_INDEX_BITS) -> Callable[[str, str], str]:
    """``(kind, value) -> search_index(...)`` for one pharmacy, its key derived once (a record has several indexes)."""
    key = _search_key(settings.RELAIS_BLIND_INDEX_KEY, str(pharmacy_id))
    shift, width = 64 - bits, (bits + 3) // 4

    def index(kind: str, value: str) -> str:
        if not value:
            return ""
        digest = hmac.digest(key, f"{kind}\x1f{value}".encode(), "sha256")
        return f"{int.from_bytes(digest[:8], 'big') >> shift:0{width}x}"

    return index


def search_index(*, kind: str, pharmacy_id: object, value: str, bits: int = SEARCH_INDEX_BITS) -> str:
    """The truncated index of an already normalised ``value`` (hex, ``bits`` long); empty for an empty value."""
    return search_indexer(pharmacy_id, bits=bits)(kind, value) if value else ""
