from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from relais.certificates import DccInvalid, kid_for_certificate, qr_png, qr_svg, sign_hc1, verify_hc1
from relais.certificates.cose import _sig_structure as sig_structure
from relais.certificates.cose import _sign as cose_sign
from relais.certificates.cose import parse_cose_sign1
from relais.certificates.keys import Signer, generate_dev_signer

from . import NOW, cose_bytes, make_payload, rewrap


@pytest.fixture(scope="module")
def signer() -> Signer:
    return generate_dev_signer(now=NOW - timedelta(days=1))


def _sign(signer: Signer, payload: dict[str, Any] | None = None, **kwargs: Any) -> str:
    options: dict[str, Any] = {"issued_at": NOW, "expires_at": NOW + timedelta(hours=72)} | kwargs
    return sign_hc1(payload or make_payload(), signer_key=signer.key, kid=signer.kid, **options)


def _reason(text: str, certificate: x509.Certificate, at: datetime = NOW + timedelta(hours=1)) -> str:
    with pytest.raises(DccInvalid) as info:
        verify_hc1(text, certificate=certificate, at=at)
    return info.value.reason


def test_round_trip(signer: Signer) -> None:
    payload = make_payload()
    hc1 = _sign(signer, payload)
    assert hc1.startswith("HC1:")
    assert verify_hc1(hc1, certificate=signer.certificate, at=NOW + timedelta(hours=1)) == payload


def test_structure_follows_hcert(signer: Signer) -> None:
    raw = cbor2.loads(cose_bytes(_sign(signer)))
    assert raw.tag == 18
    message = parse_cose_sign1(cose_bytes(_sign(signer)))
    assert message.protected == {1: -7, 4: signer.kid}
    assert len(signer.kid) == 8 and signer.kid == kid_for_certificate(signer.certificate)
    assert len(message.signature) == 64
    claims = cbor2.loads(message.payload)
    assert claims[1] == "FR" and claims[6] == int(NOW.timestamp()) and claims[4] == int((NOW + timedelta(hours=72)).timestamp())
    assert set(claims[-260]) == {1}


def test_tampered_signature_byte(signer: Signer) -> None:
    cose = bytearray(cose_bytes(_sign(signer)))
    cose[-1] ^= 0x01  # last byte of the r||s signature
    assert _reason(rewrap(bytes(cose)), signer.certificate) == "signature"


def test_tampered_payload_byte(signer: Signer) -> None:
    cose = cose_bytes(_sign(signer))
    assert b"DUPONT" in cose
    assert _reason(rewrap(cose.replace(b"DUPONT", b"DUPONS")), signer.certificate) == "signature"


def test_wrong_certificate(signer: Signer) -> None:
    other = generate_dev_signer(now=NOW - timedelta(days=1))
    assert _reason(_sign(signer), other.certificate) == "signature"
    # Same kid, other key: the signature itself must fail, not only the kid lookup.
    forged = sign_hc1(make_payload(), signer_key=other.key, kid=signer.kid, issued_at=NOW, expires_at=NOW + timedelta(hours=1))
    assert _reason(forged, signer.certificate) == "signature"


def test_expired_and_not_yet_valid(signer: Signer) -> None:
    hc1 = _sign(signer)
    assert _reason(hc1, signer.certificate, at=NOW + timedelta(hours=73)) == "expired"
    assert _reason(hc1, signer.certificate, at=NOW - timedelta(minutes=1)) == "not_yet_valid"
    assert verify_hc1(hc1, certificate=signer.certificate, at=NOW + timedelta(hours=72))  # exp itself is still valid


def test_certificate_outside_validity(signer: Signer) -> None:
    hc1 = _sign(signer, expires_at=NOW + timedelta(days=800))
    assert _reason(hc1, signer.certificate, at=NOW + timedelta(days=400)) == "expired"


def _signer_with_usage(*oids: str) -> Signer:
    base = generate_dev_signer(now=NOW - timedelta(days=1))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "usage test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(base.key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
    )
    if oids:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in oids]), critical=False)
    return Signer(key=base.key, certificate=builder.sign(base.key, hashes.SHA256()))


def test_key_usage(signer: Signer) -> None:
    vaccination_only = _signer_with_usage("1.3.6.1.4.1.1847.2021.1.2")
    assert _reason(_sign(vaccination_only), vaccination_only.certificate) == "key_usage"
    for oids in [(), ("1.3.6.1.4.1.1847.2021.1.1",), ("1.3.6.1.4.1.0.1847.2021.1.1",), ("1.3.6.1.5.5.7.3.4",)]:
        allowed = _signer_with_usage(*oids)
        assert verify_hc1(_sign(allowed), certificate=allowed.certificate, at=NOW + timedelta(hours=1))


def test_ps256_signer() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    hc1 = sign_hc1(make_payload(), signer_key=key, kid=kid_for_certificate(certificate), issued_at=NOW, expires_at=NOW + timedelta(days=1))
    assert parse_cose_sign1(cose_bytes(hc1)).alg == -37
    assert verify_hc1(hc1, certificate=certificate, at=NOW)


def test_untagged_and_unprotected_kid_accepted(signer: Signer) -> None:
    message = parse_cose_sign1(cose_bytes(_sign(signer)))
    untagged = cbor2.dumps([message.protected_bytes, {}, message.payload, message.signature])
    assert verify_hc1(rewrap(untagged), certificate=signer.certificate, at=NOW)
    # A kid only in the unprotected header is a fallback the HCERT spec allows.
    protected = cbor2.dumps({1: -7})
    signature = cose_sign(signer.key, sig_structure(protected, message.payload))
    unprotected_kid = cbor2.dumps(cbor2.CBORTag(18, [protected, {4: signer.kid}, message.payload, signature]))
    assert verify_hc1(rewrap(unprotected_kid), certificate=signer.certificate, at=NOW)["t"]
    no_kid = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, message.payload, signature]))
    assert _reason(rewrap(no_kid), signer.certificate) == "signature"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("HC2:ABC", "prefix"),
        ("NCFOXN", "prefix"),
        ("HC1:ab=", "base45"),
        ("HC1:" + "BB8", "zlib"),
    ],
)
def test_outer_layers(signer: Signer, text: str, reason: str) -> None:
    assert _reason(text, signer.certificate) == reason


BAD_COSE = [
    b"\xff",
    cbor2.dumps({"a": 1}),
    cbor2.dumps(cbor2.CBORTag(98, [])),
    cbor2.dumps([b"", {}, b"\xa0"]),
    cbor2.dumps([b"\x01", {}, b"\xa0", b""]),
]


@pytest.mark.parametrize("cose", BAD_COSE)
def test_cose_structure(signer: Signer, cose: bytes) -> None:
    assert _reason(rewrap(cose), signer.certificate) == "cose"


@pytest.mark.parametrize("claims", [b"x", cbor2.dumps({1: "FR"}), cbor2.dumps([1]), cbor2.dumps({-260: {1: "x"}, 4: 1})])
def test_signed_payload_that_is_no_dcc_cwt(signer: Signer, claims: bytes) -> None:
    protected = cbor2.dumps({1: -7, 4: signer.kid})
    message = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, claims, cose_sign(signer.key, sig_structure(protected, claims))]))
    assert _reason(rewrap(message), signer.certificate) == "cose"


def test_schema_checked_after_signature(signer: Signer) -> None:
    payload = make_payload()
    payload["nam"]["fnt"] = "lower"
    assert _reason(_sign(signer, payload), signer.certificate) == "schema"


def test_sign_arguments(signer: Signer) -> None:
    with pytest.raises(ValueError):
        _sign(signer, issued_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        _sign(signer, expires_at=NOW - timedelta(seconds=1))
    assert verify_hc1(_sign(signer), certificate=signer.certificate, at=NOW.astimezone(UTC))


def test_qr_images(signer: Signer) -> None:
    hc1 = _sign(signer)
    png = qr_png(hc1)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in png
    svg = qr_svg(hc1)
    assert svg.lstrip().startswith("<") and "svg" in svg


def test_png_geometry_and_decoding(signer: Signer, tmp_path: Any) -> None:
    import shutil
    import struct
    import subprocess
    import zlib

    hc1 = _sign(signer)
    png = qr_png(hc1, scale=2)
    width, height = struct.unpack(">II", png[16:24])
    assert width == height and (width // 2 - 8 - 17) % 4 == 0  # 4 * version + 17 modules, 4-module quiet zone
    idat = png.index(b"IDAT")
    (length,) = struct.unpack(">I", png[idat - 4 : idat])
    pixels = zlib.decompress(png[idat + 4 : idat + 4 + length])
    row = width + 1
    assert pixels[1] == 0xFF  # quiet zone is white
    assert pixels[8 * row + 1 + 8] == 0x00  # finder pattern corner is dark
    if shutil.which("zbarimg"):  # optional decoder check, present on some machines only
        target = tmp_path / "dcc.png"
        target.write_bytes(png)
        result = subprocess.run(["zbarimg", "-q", "--raw", str(target)], capture_output=True, text=True, check=False)
        assert result.stdout.strip() == hc1
