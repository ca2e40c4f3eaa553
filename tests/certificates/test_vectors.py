"""Every official dgc-testdata vector, each EXPECTEDRESULTS flag checked by the pipeline step it names.

A True flag: that step must succeed (and match the vector's intermediate data). A False flag: verify_hc1 must refuse
with one of the reason codes mapped below. PICTUREDECODE is skipped (the PNGs were not copied). Schema: only 1.3.3
ships, and the vectors (1.0.0 - 1.3.0) are validated against it; they all behave as expected.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509

from relais.certificates import base45
from relais.certificates.cose import CLAIM_HCERT, HCERT_EU_DCC, decode_claims
from relais.certificates.dcc import validate_payload
from relais.certificates.errors import DccInvalid
from relais.certificates.verify import check_key_usage, check_signature, check_validity, decode_hc1, decompress, unprefix, verify_hc1

VECTORS = Path(__file__).resolve().parents[1] / "data" / "eu-dcc" / "dgc-testdata"
FILES = sorted(VECTORS.rglob("*.json")) if VECTORS.is_dir() else []

# Which reason codes count as the expected refusal for a False flag.
REFUSALS = {
    "EXPECTEDUNPREFIX": {"prefix"},
    "EXPECTEDB45DECODE": {"base45"},
    "EXPECTEDCOMPRESSION": {"zlib"},
    "EXPECTEDDECODE": {"cose"},
    "EXPECTEDVERIFY": {"signature", "cose"},
    "EXPECTEDKEYUSAGE": {"key_usage"},
    "EXPECTEDEXPIRATIONCHECK": {"expired", "not_yet_valid"},
    "EXPECTEDSCHEMAVALIDATION": {"schema"},
}


# test_pcr_ok.json: its JSON gives sc/dr two hours earlier than the signed CBOR (local time written as Z); the
# signed data is authoritative, so only those two fields are left out of the comparison.
JSON_TIME_SKEW = {"test_pcr_ok": {"sc", "dr"}}


def _comparable(payload: dict[str, Any], stem: str) -> dict[str, Any]:
    skip = JSON_TIME_SKEW.get(stem, set())
    if not skip:
        return payload
    return {**payload, "t": [{k: v for k, v in entry.items() if k not in skip} for entry in payload.get("t", [])]}


def _clock(vector: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(vector["TESTCTX"]["VALIDATIONCLOCK"].replace("Z", "+00:00"))


def _certificate(vector: dict[str, Any]) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(vector["TESTCTX"]["CERTIFICATE"]))


def _payload(vector: dict[str, Any]) -> dict[str, Any]:
    return decode_claims(decode_hc1(vector["PREFIX"]))[CLAIM_HCERT][HCERT_EU_DCC]  # type: ignore[no-any-return]


def test_all_vectors_found() -> None:
    assert len(FILES) == 69  # vendored copy of ../shared/data/eu-dcc/dgc-testdata (tests/data/eu-dcc/SOURCES.md)


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parts[-4]}-{p.stem}" for p in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    expected = {k: v for k, v in vector["EXPECTEDRESULTS"].items() if k != "EXPECTEDPICTUREDECODE"}
    if not expected:
        pytest.skip("only the QR picture step is tested (no PNG in the copy)")
    certificate = _certificate(vector)
    clock = _clock(vector)

    for flag, reasons in REFUSALS.items():
        if expected.get(flag) is False:
            with pytest.raises(DccInvalid) as info:
                verify_hc1(vector["PREFIX"], certificate=certificate, at=clock)
            assert info.value.reason in reasons, f"{flag}: got {info.value}"

    checks = {flag for flag, value in expected.items() if value}
    if "EXPECTEDUNPREFIX" in checks:
        body = unprefix(vector["PREFIX"])
        if "BASE45" in vector:
            assert body == vector["BASE45"]
    if "EXPECTEDB45DECODE" in checks:
        compressed = base45.decode(vector.get("BASE45") or unprefix(vector["PREFIX"]))
        if "COMPRESSED" in vector:
            assert compressed.hex() == vector["COMPRESSED"].lower()
    if "EXPECTEDCOMPRESSION" in checks:
        assert decompress(bytes.fromhex(vector["COMPRESSED"])).hex() == vector["COSE"].lower()
    if checks & {"EXPECTEDDECODE", "EXPECTEDVALIDJSON", "EXPECTEDVALIDOBJECT"}:
        payload = _payload(vector)
        if "JSON" in vector:
            assert _comparable(payload, path.stem) == _comparable(vector["JSON"], path.stem)
        assert json.loads(json.dumps(payload, ensure_ascii=False)) == payload
    if "EXPECTEDENCODE" in checks:
        encoded = cbor2.loads(bytes.fromhex(vector["CBOR"]))
        if CLAIM_HCERT in encoded:  # some vectors give the whole CWT claims, others the bare payload
            encoded = encoded[CLAIM_HCERT][HCERT_EU_DCC]
        assert cbor2.loads(cbor2.dumps(vector["JSON"])) == encoded
    if "EXPECTEDVERIFY" in checks:
        check_signature(decode_hc1(vector["PREFIX"]), certificate=certificate)
    if "EXPECTEDKEYUSAGE" in checks:
        check_key_usage(_payload(vector), certificate=certificate)
    if "EXPECTEDEXPIRATIONCHECK" in checks:
        check_validity(decode_claims(decode_hc1(vector["PREFIX"])), certificate=certificate, at=clock)
    if "EXPECTEDSCHEMAVALIDATION" in checks:
        validate_payload(_payload(vector))
        if "JSON" in vector:
            validate_payload(vector["JSON"])
    if {"EXPECTEDVERIFY", "EXPECTEDEXPIRATIONCHECK"} <= checks and all(expected.values()):
        # Whole pipeline, as a verifier app would run it at the vector's clock.
        assert verify_hc1(vector["PREFIX"], certificate=certificate, at=clock) == _payload(vector)
