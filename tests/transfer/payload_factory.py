"""Sample TransferPayloads for tests: no database, every value overridable.

    sample_payload()                      identified patient, one negative SARS-CoV-2 result
    sample_payload(patient=None)          pseudonymous destination or legacy withheld test: pseudonym only
    sample_payload(patient=sample_patient(nir=""), results=(sample_result(), sample_result(analyte="rsv", ...)))

Each call gets a fresh message_id, screening_id and series_id unless they are overridden.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED
from relais.transfer.payload import PatientPart, ResultPart, TransferPayload

PARIS_WINTER = timezone(timedelta(hours=1))
SAMPLED_AT = datetime(2024, 3, 1, 10, 0, 0, tzinfo=PARIS_WINTER)


def sample_patient(**overrides: Any) -> PatientPart:
    values: dict[str, Any] = {
        "last_name": "DURAND-TESTEUR",
        "first_names": "Camille Marie",
        "sex": "F",
        "date_of_birth": date(1994, 3, 12),
        "nir": "294037512000591",
        "address_line": "12 rue de la Paix",
        "postcode": "75002",
        "city": "Paris",
        "country": "FR",
        "phone": "+33612345678",
        "email": "camille.durand@example.org",
    }
    values.update(overrides)
    return PatientPart(**values)


def sample_result(**overrides: Any) -> ResultPart:
    values: dict[str, Any] = {
        "analyte": "sars-cov-2",
        "analyte_label": "SARS-CoV-2",
        "loinc_code": "94558-4",
        "loinc_display": "SARS-CoV-2 (COVID-19) Ag [Presence] in Respiratory specimen by Rapid immunoassay",
        "result_snomed": RESULT_NOT_DETECTED,
        "result_display": "Not detected (negative)",
    }
    values.update(overrides)
    return ResultPart(**values)


def sample_payload(**overrides: Any) -> TransferPayload:
    values: dict[str, Any] = {
        "message_id": secrets.token_hex(10),
        "created_at": datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC),
        "status": "final",
        "screening_id": uuid.uuid4(),
        "series_id": uuid.uuid4(),
        "version": 1,
        "sampled_at": SAMPLED_AT,
        "recorded_at": SAMPLED_AT + timedelta(minutes=15),
        "specimen_snomed": DEFAULT_SPECIMEN,
        "specimen_display": "Nasopharyngeal swab",
        "device_id": "1232",
        "device_name": "Panbio COVID-19 Ag Rapid Test",
        "device_manufacturer": "Abbott Rapid Diagnostics",
        "pharmacy_name": "Pharmacie du Test",
        "pharmacy_finess": "750000010",
        "pharmacy_address_line": "1 rue du Test",
        "pharmacy_postcode": "75010",
        "pharmacy_city": "Paris",
        "pharmacy_id": "3f2c1b0a-9e8d-4c7b-8a69-5f4e3d2c1b0a",
        "patient_pseudonym": "5f1c0e2a9b7d4c3e8a6f0b1d2c3e4f5a",
        "patient": sample_patient(),
        "results": (sample_result(),),
    }
    values.update(overrides)
    return TransferPayload(**values)
