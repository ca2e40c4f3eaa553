from __future__ import annotations

import base64
import os

import pytest
from django.db import connection
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.core import crypto
from relais.patients.models import Patient


def _raw_row(patient_id: object) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM patients_patient WHERE id = %s", [patient_id.hex if connection.vendor == "sqlite" else patient_id])
        columns = [c[0] for c in cursor.description]
        return dict(zip(columns, cursor.fetchone(), strict=True))


def test_identity_columns_hold_only_ciphertext(patient: Patient) -> None:
    row = _raw_row(patient.pk)
    for column in ("last_name", "first_names", "sex", "date_of_birth", "nir", "phone", "email", "city", "postcode"):
        assert row[column].startswith("v1.dk"), column
    dump = " ".join(str(v) for v in row.values())
    for secret in ("DURAND", "Camille", "294037512000591", "612345678", "camille.durand", "1994-03-12"):
        assert secret not in dump


def test_round_trip_through_the_database(patient: Patient) -> None:
    crypto.forget_keys()  # force unwrapping from the database
    fresh = Patient.objects.get(pk=patient.pk)
    assert fresh.last_name == "DURAND-TESTEUR"
    assert fresh.date_of_birth.isoformat() == "1994-03-12"
    assert fresh.nir == "294037512000591"


def test_ciphertext_moved_to_another_row_or_column_fails(patient: Patient, owner: object) -> None:
    token = _raw_row(patient.pk)["last_name"]
    aad_other_row = crypto.aad_for("patients_patient", "last_name", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, aad=aad_other_row)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, aad=crypto.aad_for("patients_patient", "first_names", patient.pk))


def test_tampered_ciphertext_fails(db: object) -> None:
    aad = b"t|c|1"
    token = crypto.encrypt("secret", aad=aad)
    prefix, key_id, payload = token.split(".", 2)
    blob = bytearray(base64.b64decode(payload))
    blob[-1] ^= 1
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(f"{prefix}.{key_id}.{base64.b64encode(bytes(blob)).decode()}", aad=aad)


def test_wrong_master_key_cannot_unwrap(patient: Patient) -> None:
    other = base64.urlsafe_b64encode(os.urandom(32)).decode()
    crypto.forget_keys()
    with override_settings(RELAIS_MASTER_KEY=other, RELAIS_OLD_MASTER_KEYS=[]):
        with pytest.raises(crypto.DecryptionError):
            _ = Patient.objects.get(pk=patient.pk).last_name
    crypto.forget_keys()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300), column=st.sampled_from(["a", "b"]))
def test_encrypt_decrypt_any_text(db: object, text: str, column: str) -> None:
    aad = crypto.aad_for("t", column, 1)
    token = crypto.encrypt(text, aad=aad)
    assert token.startswith("v1.")
    assert crypto.decrypt(token, aad=aad) == text


def test_values_encrypt_differently_each_time(db: object) -> None:
    aad = b"x"
    assert crypto.encrypt("same", aad=aad) != crypto.encrypt("same", aad=aad)
