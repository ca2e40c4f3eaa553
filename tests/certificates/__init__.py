"""Helpers shared by the DCC library tests."""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from relais.certificates import base45
from relais.certificates.dcc import build_test_payload
from relais.certificates.uvci import new_uvci

NOW = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def make_payload(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "family_name": "Dupont-Lefèvre",
        "given_name": "Zoé",
        "birth_date": date(1980, 1, 2),
        "device_id": "1232",
        "sampled_at": NOW - timedelta(minutes=20),
        "detected": False,
        "testing_centre": "Pharmacie du Test, Paris",
        "issuer": "Relais",
        "uvci": new_uvci(),
    }
    fields.update(overrides)
    return build_test_payload(**fields)


def cose_bytes(hc1: str) -> bytes:
    return zlib.decompress(base45.decode(hc1.removeprefix("HC1:")))


def rewrap(cose: bytes) -> str:
    return "HC1:" + base45.encode(zlib.compress(cose))
