"""Development certificates for the sandbox's mutual TLS: ``python -m sandbox.devcerts DIR``.

Creates, when missing, a dev CA and two certificates it signs (EC P-256, valid 2 years):

    ca.pem, ca-key.pem           the CA (trusted by the sandbox for client certificates, and by clients for the server)
    server.pem, server-key.pem   the sandbox (SAN DNS:localhost, IP:127.0.0.1)
    client.pem, client-key.pem   a sender (CN relais-dev-client)

Keys are written mode 0600. Existing files are kept; when the CA is (re)created, both leaves are
re-issued so that they chain to it. Never use these outside development and tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CN = "Relais SI-DEP sandbox dev CA"
SERVER_CN = "localhost"
CLIENT_CN = "relais-dev-client"
FILES = ("ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem")
VALIDITY = dt.timedelta(days=730)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Relais (development)"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(CA_CN)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca-key.pem", key)
    _write_cert(directory / "ca.pem", cert)
    return cert, key


def _make_leaf(
    directory: Path, stem: str, common_name: str, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, server: bool
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(_name(common_name), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    )
    if server:
        san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    else:
        san = x509.SubjectAlternativeName([x509.DNSName(common_name)])
    cert = builder.add_extension(san, critical=False).sign(ca_key, hashes.SHA256())
    _write_key(directory / f"{stem}-key.pem", key)
    _write_cert(directory / f"{stem}.pem", cert)


def ensure(directory: Path) -> list[str]:
    """Create whatever is missing in ``directory``; return the names of the files written."""
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
    before = {name for name in FILES if (directory / name).exists()}
    if {"ca.pem", "ca-key.pem"} <= before:
        ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        loaded = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise SystemExit(f"{directory / 'ca-key.pem'}: not an EC key made by sandbox.devcerts")
        ca_key = loaded
        renew_leaves = False
    else:
        ca_cert, ca_key = _make_ca(directory)
        renew_leaves = True
    for stem, common_name, server in (("server", SERVER_CN, True), ("client", CLIENT_CN, False)):
        if renew_leaves or not {f"{stem}.pem", f"{stem}-key.pem"} <= before:
            _make_leaf(directory, stem, common_name, ca_cert, ca_key, server=server)
    return [name for name in FILES if name not in before or renew_leaves]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.devcerts", description="Create the sandbox's development CA and certificates.")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    written = ensure(args.directory)
    if written:
        print(f"devcerts: wrote {', '.join(written)} in {args.directory}")
    else:
        print(f"devcerts: {args.directory} already holds every certificate and key")
    return 0


if __name__ == "__main__":
    sys.exit(main())
