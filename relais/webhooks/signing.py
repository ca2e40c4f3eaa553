"""Signing: an EC key derived from one secret, published as a JWK set; nothing shared with receivers."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from relais.core.secrets import decode_key

SIGNATURE_HEADER = "Relais-Signature"
KEY_INFO = b"relais webhook signing key v1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@functools.lru_cache(maxsize=4)
def _signing_key(seed: str) -> ec.EllipticCurvePrivateKey:
    raw = decode_key("RELAIS_WEBHOOK_SIGNING_KEY", seed)
    # 48 bytes (64 more bits than the order) make the reduction's bias negligible; +1 keeps the scalar non-zero.
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=KEY_INFO).derive(raw)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return ec.derive_private_key(int.from_bytes(okm, "big") % (order - 1) + 1, ec.SECP256R1())


def _public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = key.public_numbers()
    coords = {"crv": "P-256", "kty": "EC", "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big"))}
    # RFC 7638 thumbprint: required members only, sorted, no whitespace.
    kid = _b64url(hashlib.sha256(json.dumps(coords, sort_keys=True, separators=(",", ":")).encode()).digest())
    return {**coords, "kid": kid, "alg": "ES256", "use": "sig"}


def webhook_jwks() -> dict[str, Any]:
    """The public key set receivers verify with (served at /api/v1/webhook-keys).

    After a rotation the previous keys stay published (RELAIS_WEBHOOK_PREVIOUS_SIGNING_KEYS) so notifications signed just
    before the change still verify; only the current key signs."""
    seeds = [settings.RELAIS_WEBHOOK_SIGNING_KEY, *getattr(settings, "RELAIS_WEBHOOK_PREVIOUS_SIGNING_KEYS", [])]
    return {"keys": [_public_jwk(_signing_key(seed).public_key()) for seed in seeds]}


def webhook_sign(body: bytes, *, at: float | None = None) -> str:
    """A compact JWS over the body with the payload left out (b64=false): header..signature."""
    key = _signing_key(settings.RELAIS_WEBHOOK_SIGNING_KEY)
    headers = {"kid": _public_jwk(key.public_key())["kid"], "iat": int(time.time() if at is None else at)}
    return jwt.api_jws.encode(body, key, algorithm="ES256", headers=headers, is_payload_detached=True)


class WebhookSignatureError(ValueError):
    """The body does not match the signature, the key is unknown, or the signature is stale."""


def verify_webhook_signature(body: bytes, signature: str, jwks: dict[str, Any], *, max_age_seconds: int = 300) -> dict[str, Any]:
    """Reference receiver check: returns the verified event. Receivers should also drop event ids they have seen."""
    try:
        header = jwt.get_unverified_header(signature)
        jwk = next((k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")), None)
        if jwk is None:
            raise WebhookSignatureError("unknown key id: fetch the key set again")
        decoded = jwt.api_jws.decode_complete(signature, key=jwt.PyJWK(jwk).key, algorithms=["ES256"], detached_payload=body)
    except jwt.InvalidTokenError as exc:
        raise WebhookSignatureError(f"invalid signature: {exc}") from exc
    iat = decoded["header"].get("iat")
    if not isinstance(iat, int) or abs(time.time() - iat) > max_age_seconds:
        raise WebhookSignatureError("signature too old (or from the future): possible replay")
    event: dict[str, Any] = json.loads(body)
    return event
