"""Document-signer (DSC) key and certificate: a throwaway development pair, or PEM files named by the environment."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from relais.certificates.cose import SignerKey, kid_for_certificate

KEY_FILE_ENV = "RELAIS_DCC_SIGNER_KEY_FILE"
CERT_FILE_ENV = "RELAIS_DCC_SIGNER_CERT_FILE"
OID_DCC_TEST = x509.ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.1")


class SignerConfigError(Exception):
    """The signer key or certificate is missing, unreadable, mismatched or too widely readable."""


@dataclass(frozen=True)
class Signer:
    key: SignerKey
    certificate: x509.Certificate

    @functools.cached_property
    def kid(self) -> bytes:  # a hash of the certificate: once per process, not once per certificate signed
        return kid_for_certificate(self.certificate)


def generate_dev_signer(
    *, common_name: str = "Relais DCC DEV signer", country: str = "FR", now: datetime | None = None, days: int = 365
) -> Signer:
    """A P-256 key and a self-signed certificate allowed to sign test certificates only (never for production)."""
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([OID_DCC_TEST]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Signer(key=key, certificate=certificate)


def write_signer(signer: Signer, *, key_file: Path, cert_file: Path) -> None:
    """Write the key (mode 0600, refusing to overwrite) and the certificate as PEM."""
    pem = signer.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    cert_file.write_bytes(signer.certificate.public_bytes(serialization.Encoding.PEM))


def validity_problem(certificate: x509.Certificate, *, now: datetime | None = None) -> str | None:
    """Why the certificate cannot sign today (expired, not yet valid), or None."""
    now = now or datetime.now(UTC)
    if certificate.not_valid_after_utc <= now:
        return f"the DCC signer certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}; install a new one"
    if certificate.not_valid_before_utc > now:
        return f"the DCC signer certificate is valid only from {certificate.not_valid_before_utc:%Y-%m-%d}"
    return None


def days_left(certificate: x509.Certificate, *, now: datetime | None = None) -> float:
    return (certificate.not_valid_after_utc - (now or datetime.now(UTC))).total_seconds() / 86400


def load_signer(*, key_file: Path | None = None, cert_file: Path | None = None, require_valid: bool = False) -> Signer:
    """Load the signer from the given paths, or from RELAIS_DCC_SIGNER_KEY_FILE / RELAIS_DCC_SIGNER_CERT_FILE.

    ``require_valid``: refuse a certificate that is expired or not yet valid (the production start-up check)."""
    key_path = key_file or _env_path(KEY_FILE_ENV)
    cert_path = cert_file or _env_path(CERT_FILE_ENV)
    try:
        mode = key_path.stat().st_mode
        if mode & 0o077:  # group or other may read or write it
            raise SignerConfigError(f"{key_path} is readable or writable by other users; chmod 600 it")
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except OSError as exc:
        raise SignerConfigError(f"cannot read signer file: {exc.strerror} ({exc.filename})") from None
    except (ValueError, TypeError) as exc:
        raise SignerConfigError(f"signer file is not an unencrypted PEM key or certificate ({type(exc).__name__})") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SignerConfigError("EC signer key must be on P-256 (ES256)")
    elif not isinstance(key, rsa.RSAPrivateKey):
        raise SignerConfigError("signer key must be EC P-256 or RSA")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != certificate.public_key().public_bytes(*spki):
        raise SignerConfigError("signer key does not match the certificate")
    problem = validity_problem(certificate) if require_valid else None
    if problem:
        raise SignerConfigError(problem)
    return Signer(key=key, certificate=certificate)


def _env_path(name: str) -> Path:
    value = os.environ.get(name, "")
    if not value:
        raise SignerConfigError(f"{name} is not set")
    return Path(value)
