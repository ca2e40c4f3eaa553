"""EU DCC test certificates signed and verified per second, in one process with a throwaway development signer.

Usage: .venv/bin/python bench/dcc_sign.py [-n 2000]
Signing covers build_test_payload (transliteration + JSON-schema validation) + CWT/COSE ES256 + zlib + Base45;
verifying covers the whole verify_hc1 pipeline (decode, signature, key usage, dates, schema).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relais.settings")
os.environ.setdefault("RELAIS_ENV", "test")

from relais.certificates import build_test_payload, new_uvci, sign_hc1, verify_hc1  # noqa: E402
from relais.certificates.keys import generate_dev_signer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    n = parser.parse_args().n
    now = datetime.now(UTC)
    signer = generate_dev_signer(now=now)
    texts = []
    start = time.perf_counter()
    for i in range(n):
        payload = build_test_payload(
            family_name=f"Bench-Lefèvre {i}",
            given_name="Zoé",
            birth_date=date(1980, 1, 1) + timedelta(days=i % 9000),
            device_id="1232",
            sampled_at=now - timedelta(minutes=30),
            detected=i % 7 == 0,
            testing_centre="Pharmacie du Banc d'Essai",
            issuer="Relais",
            uvci=new_uvci(),
        )
        texts.append(sign_hc1(payload, signer_key=signer.key, kid=signer.kid, issued_at=now, expires_at=now + timedelta(hours=72)))
    signing = time.perf_counter() - start
    start = time.perf_counter()
    for text in texts:
        verify_hc1(text, certificate=signer.certificate, at=now + timedelta(minutes=1))
    verifying = time.perf_counter() - start
    print(f"dcc: signed={n} per_second={n / signing:.0f}")
    print(f"dcc: verified={n} per_second={n / verifying:.0f}")


if __name__ == "__main__":
    main()
