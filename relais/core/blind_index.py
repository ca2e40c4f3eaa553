"""HMAC blind indexes: exact-match search on encrypted fields without storing plaintext.

The pharmacy id is part of the input, so the same person at two pharmacies cannot be linked.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from datetime import date

from django.conf import settings

from relais.core.secrets import decode_key


def normalise_name(value: str) -> str:
    """Upper-case ASCII letters only: 'Durand-Testeur' and 'DURAND TESTEUR' index alike."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalpha()).upper()


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


def patient_pseudonym(*, pharmacy_id: object, patient_id: object) -> str:
    """A stable id for messages without identity: same patient, same pseudonym; not reversible."""
    return _hmac("pseudonym", pharmacy_id, str(patient_id))[:32]
