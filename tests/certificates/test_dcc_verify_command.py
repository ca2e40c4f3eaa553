from __future__ import annotations

import base64
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.management import call_command
from django.core.management.base import CommandError

from relais.certificates import sign_hc1
from relais.certificates.keys import Signer, generate_dev_signer
from relais.certificates.management.commands.dcc_verify import EXIT_CODES, Command

from . import NOW, cose_bytes, make_payload, rewrap

AT = (NOW + timedelta(hours=1)).isoformat()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return generate_dev_signer(now=NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def hc1(signer: Signer) -> str:
    return sign_hc1(make_payload(), signer_key=signer.key, kid=signer.kid, issued_at=NOW, expires_at=NOW + timedelta(hours=48))


def _b64(signer: Signer) -> str:
    return base64.b64encode(signer.certificate.public_bytes(Encoding.DER)).decode()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    extra = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    try:
        call_command(Command(), *args, stdout=out, stderr=err, **extra)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_valid_with_base64_certificate(signer: Signer, hc1: str) -> None:
    code, out, _ = _run(hc1, "--cert", _b64(signer), "--at", AT)
    assert code == 0
    payload = json.loads(out)
    assert payload["nam"]["fn"] == "Dupont-Lefèvre" and "Lefèvre" in out  # ensure_ascii=False


def test_valid_from_stdin_with_pem_file(signer: Signer, hc1: str, tmp_path: Path) -> None:
    pem = tmp_path / "dsc.pem"
    pem.write_bytes(signer.certificate.public_bytes(Encoding.PEM))
    code, out, _ = _run("--cert", str(pem), "--at", AT, stdin=hc1 + "\n")
    assert code == 0 and json.loads(out)["t"][0]["co"] == "FR"


def _tampered_signature(hc1: str) -> str:
    cose = bytearray(cose_bytes(hc1))
    cose[-1] ^= 1
    return rewrap(bytes(cose))


@pytest.mark.parametrize(
    ("make", "at", "reason"),
    [
        (lambda h: "HC2:" + h[4:], AT, "prefix"),
        (lambda h: h + "=", AT, "base45"),
        (lambda h: "HC1:BB8", AT, "zlib"),
        (lambda h: rewrap(b"\xa0"), AT, "cose"),
        (_tampered_signature, AT, "signature"),
        (lambda h: h, (NOW + timedelta(days=3)).isoformat(), "expired"),
        (lambda h: h, (NOW - timedelta(hours=1)).isoformat(), "not_yet_valid"),
    ],
)
def test_each_failure_reason(signer: Signer, hc1: str, make, at: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = _run(make(hc1), "--cert", _b64(signer), "--at", at)
    assert code == EXIT_CODES[reason]
    assert err.startswith(f"invalid: {reason}: ")
    assert out == ""


def test_key_usage_and_schema_reasons(signer: Signer) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    vacc_only = (
        x509.CertificateBuilder()
        .subject_name(signer.certificate.subject)
        .issuer_name(signer.certificate.subject)
        .public_key(signer.key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=10))
        .add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier("1.3.6.1.4.1.1847.2021.1.2")]), critical=False)
        .sign(signer.key, hashes.SHA256())
    )
    vacc_signer = Signer(key=signer.key, certificate=vacc_only)
    text = sign_hc1(make_payload(), signer_key=signer.key, kid=vacc_signer.kid, issued_at=NOW, expires_at=NOW + timedelta(hours=4))
    code, _, err = _run(text, "--cert", _b64(vacc_signer), "--at", AT)
    assert (code, err.split(":")[1].strip()) == (EXIT_CODES["key_usage"], "key_usage")

    bad = make_payload()
    bad["dob"] = "18-01-01"
    text = sign_hc1(bad, signer_key=signer.key, kid=signer.kid, issued_at=NOW, expires_at=NOW + timedelta(hours=4))
    code, _, err = _run(text, "--cert", _b64(signer), "--at", AT)
    assert code == EXIT_CODES["schema"] and err.startswith("invalid: schema: ")
    assert "18-01-01" not in err


def test_reference_vector_through_the_command() -> None:
    vector_file = Path(__file__).resolve().parents[1] / "data/eu-dcc/dgc-testdata/FR/2DCode/raw/DCC_Test_0001.json"
    vector = json.loads(vector_file.read_text(encoding="utf-8"))
    ctx = vector["TESTCTX"]
    code, out, _ = _run(vector["PREFIX"], "--cert", ctx["CERTIFICATE"], "--at", ctx["VALIDATIONCLOCK"])
    assert code == 0 and json.loads(out) == vector["JSON"]


def test_usage_errors(hc1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAIS_DCC_SIGNER_CERT_FILE", raising=False)
    with pytest.raises(CommandError, match="--cert"):
        call_command(Command(), hc1)
    with pytest.raises(CommandError, match="base64"):
        call_command(Command(), hc1, "--cert", "not a cert!")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command(Command(), hc1, "--cert", "AAAA", "--at", "yesterday")
