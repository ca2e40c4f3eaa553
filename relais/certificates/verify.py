"""Decode and verify an HC1 text against a document-signer certificate, step by step as the HCERT spec orders them."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relais.certificates import base45
from relais.certificates.cose import (
    CLAIM_EXP,
    CLAIM_HCERT,
    CLAIM_IAT,
    HC1_PREFIX,
    HCERT_EU_DCC,
    CoseSign1,
    decode_claims,
    kid_for_certificate,
    parse_cose_sign1,
    verify_signature,
)
from relais.certificates.dcc import validate_payload
from relais.certificates.errors import DccInvalid
from relais.certificates.valuesets import ValueSets, check_value_sets

# Extended key usage OIDs restricting a document signer to certificate types (HCERT spec 5.1.1); the variants with
# the extra ".0" arc were published by mistake but are in use, so both count.
KEY_USAGE_OIDS = {
    "t": {"1.3.6.1.4.1.1847.2021.1.1", "1.3.6.1.4.1.0.1847.2021.1.1"},
    "v": {"1.3.6.1.4.1.1847.2021.1.2", "1.3.6.1.4.1.0.1847.2021.1.2"},
    "r": {"1.3.6.1.4.1.1847.2021.1.3", "1.3.6.1.4.1.0.1847.2021.1.3"},
}
_ALL_DCC_OIDS = set().union(*KEY_USAGE_OIDS.values())


def unprefix(text: str) -> str:
    if not text.startswith(HC1_PREFIX):
        raise DccInvalid("prefix", "text does not start with 'HC1:'")
    return text[len(HC1_PREFIX) :]


def decompress(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        raise DccInvalid("zlib", "data is not a complete zlib stream") from None


def decode_hc1(text: str) -> CoseSign1:
    """Prefix, Base45 and zlib layers off, COSE_Sign1 parsed; no signature or date checked yet."""
    body = unprefix(text.strip())
    try:
        compressed = base45.decode(body)
    except base45.Base45Error as exc:
        raise DccInvalid("base45", str(exc)) from None
    return parse_cose_sign1(decompress(compressed))


def check_signature(message: CoseSign1, *, certificate: x509.Certificate) -> None:
    kid = message.kid
    if kid is None:
        raise DccInvalid("signature", "no kid in the protected or unprotected header")
    if kid != kid_for_certificate(certificate):
        raise DccInvalid("signature", "kid does not identify the given certificate")
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise DccInvalid("signature", "certificate key is neither EC nor RSA")
    verify_signature(message, public_key=public_key)


def check_key_usage(payload: dict[str, Any], *, certificate: x509.Certificate) -> None:
    """A signer whose extended key usage names DCC types may only sign those types; one naming none signs all."""
    try:
        usages = {oid.dotted_string for oid in certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value}
    except x509.ExtensionNotFound:
        return
    except ValueError:
        # An empty or unparseable extended key usage restricts nothing (reference vector CO15 signs with an empty one).
        return
    if not usages & _ALL_DCC_OIDS:
        return
    for group, oids in KEY_USAGE_OIDS.items():
        if group in payload and not usages & oids:
            raise DccInvalid("key_usage", f"signer certificate is not allowed to sign '{group}' certificates")


def _instant(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def check_validity(claims: dict[Any, Any], *, certificate: x509.Certificate, at: datetime) -> None:
    if at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    if CLAIM_IAT in claims and _instant(claims[CLAIM_IAT]) > at:
        raise DccInvalid("not_yet_valid", "issued after the validation time")
    if CLAIM_EXP not in claims:
        raise DccInvalid("expired", "no expiry claim")
    if _instant(claims[CLAIM_EXP]) < at:
        raise DccInvalid("expired", "expired before the validation time")
    if certificate.not_valid_before_utc > at:
        raise DccInvalid("not_yet_valid", "signer certificate is not yet valid at the validation time")
    if certificate.not_valid_after_utc < at:
        raise DccInvalid("expired", "signer certificate has expired at the validation time")


def verify_hc1(text: str, *, certificate: x509.Certificate, at: datetime, value_sets: ValueSets | None = None) -> dict[str, Any]:
    """The DCC payload of a valid HC1 text, or DccInvalid with the first failing reason code. ``value_sets``: the coded
    fields are checked against them last (reason value_set); None skips that check."""
    message = decode_hc1(text)
    # Signature before claims: a payload altered in transit reports "signature", not a CBOR detail.
    check_signature(message, certificate=certificate)
    claims = decode_claims(message)
    payload: dict[str, Any] = claims[CLAIM_HCERT][HCERT_EU_DCC]
    check_key_usage(payload, certificate=certificate)
    check_validity(claims, certificate=certificate, at=at)
    validate_payload(payload)
    if value_sets is not None:
        check_value_sets(payload, value_sets)
    return payload
