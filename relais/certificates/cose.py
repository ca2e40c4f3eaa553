"""CWT claims in a COSE_Sign1 message (RFC 8152 / 8392), as the HCERT specification profiles them, and the HC1 wrapping."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from relais.certificates import base45
from relais.certificates.errors import DccInvalid

HC1_PREFIX = "HC1:"
TAG_COSE_SIGN1 = 18
TAG_CWT = 61
HEADER_ALG = 1
HEADER_KID = 4
ALG_ES256 = -7
ALG_PS256 = -37
CLAIM_ISS = 1
CLAIM_EXP = 4
CLAIM_IAT = 6
CLAIM_HCERT = -260
HCERT_EU_DCC = 1

SignerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def kid_for_certificate(certificate: x509.Certificate) -> bytes:
    """HCERT key identifier: the first 8 bytes of the SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()[:8]


@dataclass(frozen=True)
class CoseSign1:
    protected_bytes: bytes
    protected: dict[Any, Any]
    unprotected: dict[Any, Any]
    payload: bytes
    signature: bytes

    @property
    def alg(self) -> Any:
        return self.protected.get(HEADER_ALG, self.unprotected.get(HEADER_ALG))

    @property
    def kid(self) -> bytes | None:
        # HCERT: the protected kid wins; the unprotected one is only a fallback.
        kid = self.protected.get(HEADER_KID, self.unprotected.get(HEADER_KID))
        return kid if isinstance(kid, bytes) else None

    def to_be_signed(self) -> bytes:
        return _sig_structure(self.protected_bytes, self.payload)


def _sig_structure(protected_bytes: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected_bytes, b"", payload])


def _sign(key: SignerKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("ES256 needs a P-256 key")
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        # COSE wants the fixed-length r||s form, not the DER that cryptography returns.
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return key.sign(data, pss, hashes.SHA256())


def sign_hc1(
    payload: dict[str, Any],
    *,
    signer_key: SignerKey,
    kid: bytes,
    issuer_country: str = "FR",
    issued_at: datetime,
    expires_at: datetime,
) -> str:
    """CWT -> COSE_Sign1 (ES256 for a P-256 key, PS256 for RSA) -> zlib -> Base45 -> 'HC1:'."""
    if issued_at.utcoffset() is None or expires_at.utcoffset() is None:
        raise ValueError("issued_at and expires_at must be timezone-aware")
    if expires_at <= issued_at:
        raise ValueError("expires_at must be after issued_at")
    claims = {
        CLAIM_ISS: issuer_country,
        CLAIM_EXP: int(expires_at.timestamp()),
        CLAIM_IAT: int(issued_at.timestamp()),
        CLAIM_HCERT: {HCERT_EU_DCC: payload},
    }
    body = cbor2.dumps(claims)
    alg = ALG_ES256 if isinstance(signer_key, ec.EllipticCurvePrivateKey) else ALG_PS256
    protected_bytes = cbor2.dumps({HEADER_ALG: alg, HEADER_KID: kid})
    signature = _sign(signer_key, _sig_structure(protected_bytes, body))
    message = cbor2.dumps(cbor2.CBORTag(TAG_COSE_SIGN1, [protected_bytes, {}, body, signature]))
    return HC1_PREFIX + base45.encode(zlib.compress(message, 9))


def parse_cose_sign1(data: bytes) -> CoseSign1:
    """Decode a COSE_Sign1 (tagged 18, untagged, or inside a CWT tag 61); DccInvalid('cose') on any structural fault."""
    try:
        item = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several unrelated types on garbage input
        raise DccInvalid("cose", f"not CBOR ({type(exc).__name__})") from None
    if isinstance(item, cbor2.CBORTag) and item.tag == TAG_CWT:
        item = item.value
    if isinstance(item, cbor2.CBORTag):
        if item.tag != TAG_COSE_SIGN1:
            raise DccInvalid("cose", f"CBOR tag {item.tag} is not COSE_Sign1")
        item = item.value
    # cbor2 hands back tag contents as immutable tuple / frozendict.
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise DccInvalid("cose", "COSE_Sign1 is not an array of four items")
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes) or not isinstance(unprotected, Mapping):
        raise DccInvalid("cose", "COSE_Sign1 headers are malformed")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise DccInvalid("cose", "COSE_Sign1 payload or signature is not a byte string")
    try:
        protected = cbor2.loads(protected_bytes) if protected_bytes else {}
    except Exception:
        raise DccInvalid("cose", "protected header is not CBOR") from None
    if not isinstance(protected, Mapping):
        raise DccInvalid("cose", "protected header is not a map")
    return CoseSign1(protected_bytes, dict(protected), dict(unprotected), payload, signature)


def verify_signature(message: CoseSign1, *, public_key: PublicKey) -> None:
    """DccInvalid('signature') unless `message` was signed by `public_key` with the algorithm it announces."""
    alg = message.alg
    data = message.to_be_signed()
    try:
        if alg == ALG_ES256 and isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(message.signature) != 64:
                raise DccInvalid("signature", "ES256 signature is not 64 bytes")
            r = int.from_bytes(message.signature[:32], "big")
            s = int.from_bytes(message.signature[32:], "big")
            public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        elif alg == ALG_PS256 and isinstance(public_key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            public_key.verify(message.signature, data, pss, hashes.SHA256())
        else:
            raise DccInvalid("signature", f"algorithm {alg!r} does not match the certificate key")
    except InvalidSignature:
        raise DccInvalid("signature", "signature does not verify") from None


def _plain(value: Any) -> Any:
    """JSON-shaped copy of a decoded CBOR item (some issuers used CBOR date tags, which cbor2 turns into objects)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, cbor2.CBORTag):
        return _plain(value.value)
    return value


def decode_claims(message: CoseSign1) -> dict[Any, Any]:
    """The CWT claims map; DccInvalid('cose') when the payload is not a CWT with an EU DCC inside."""
    try:
        claims = cbor2.loads(message.payload)
    except Exception:
        raise DccInvalid("cose", "CWT payload is not CBOR") from None
    if not isinstance(claims, Mapping):
        raise DccInvalid("cose", "CWT payload is not a map")
    claims = dict(claims)
    hcert = claims.get(CLAIM_HCERT)
    if not isinstance(hcert, Mapping) or not isinstance(hcert.get(HCERT_EU_DCC), Mapping):
        raise DccInvalid("cose", "CWT has no hcert claim -260 with an EU DCC (key 1)")
    claims[CLAIM_HCERT] = {HCERT_EU_DCC: _plain(hcert[HCERT_EU_DCC])}
    for claim in (CLAIM_EXP, CLAIM_IAT):
        if claim in claims and (not isinstance(claims[claim], int | float) or isinstance(claims[claim], bool)):
            raise DccInvalid("cose", f"CWT claim {claim} is not a number")
    return claims
