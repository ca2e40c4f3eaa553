"""Certificates issued with final COVID-19 results; revoked and reissued on correction; the verifier accepts them."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from relais.certificates.models import Certificate
from relais.certificates.services import certificate_for_screening, signer
from relais.certificates.verify import verify_hc1
from relais.intake.services import screening_correct, screening_record
from relais.patients.services import patient_register
from relais.screenings.vocab import RESULT_DETECTED, RESULT_INVALID, RESULT_NOT_DETECTED
from tests.factories import identity, screening_input

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_a_negative_result_gets_a_certificate_that_verifies(owner: Any) -> None:
    patient = patient_register(actor=owner, identity=identity(last_name="Dupont-Lefèvre", first_names="Zoé Marie", nir=""))
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    certificate = certificate_for_screening(screening=screening)
    assert certificate is not None and certificate.hc1.startswith("HC1:")
    payload = verify_hc1(certificate.hc1, certificate=signer().certificate, at=timezone.now())
    assert payload["nam"] == {"fn": "Dupont-Lefèvre", "fnt": "DUPONT<LEFEVRE", "gn": "Zoé Marie", "gnt": "ZOE<MARIE"}
    assert payload["dob"] == "1994-03-12"
    [test] = payload["t"]
    assert test["tr"] == RESULT_NOT_DETECTED and test["ma"] == "1232" and test["tt"] == "LP217198-3" and test["co"] == "FR"
    assert test["ci"] == certificate.uvci and test["tc"] == "Pharmacie du Test"
    # The HC1 string holds the name: it is stored encrypted, and the UVCI alone names nobody.
    with connection.cursor() as cursor:
        cursor.execute("SELECT hc1 FROM certificates_certificate")
        [(stored,)] = cursor.fetchall()
    assert "HC1:" not in stored


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"results": {"sars-cov-2": RESULT_INVALID}}, "invalid result"),
    ],
)
def test_no_certificate_for_an_invalid_result(owner: Any, patient: Any, overrides: dict[str, Any], reason: str) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(**overrides))
    assert certificate_for_screening(screening=screening) is None, reason


def test_correction_revokes_and_reissues_removal_revokes(owner: Any, patient: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    first = certificate_for_screening(screening=screening)
    assert first is not None
    correction = screening_correct(actor=owner, screening_id=screening.pk, reason="misread", results={"sars-cov-2": RESULT_DETECTED})
    first.refresh_from_db()
    assert first.revoked_at is not None and first.revocation_reason == "corrected"
    second = certificate_for_screening(screening=correction)
    assert second is not None and second.uvci != first.uvci
    assert verify_hc1(second.hc1, certificate=signer().certificate, at=timezone.now())["t"][0]["tr"] == RESULT_DETECTED
    screening_correct(actor=owner, screening_id=correction.pk, reason="wrong patient", remove=True)
    second.refresh_from_db()
    assert second.revoked_at is not None and second.revocation_reason == "removed"
    assert Certificate.objects.filter(revoked_at__isnull=True).count() == 0
    revoked = Client().get("/dcc/revocations.json").json()
    expected = {base64.b64encode(hashlib.sha256(c.uvci.encode()).digest()[:16]).decode() for c in (first, second)}
    assert set(revoked["hashes"]) == expected and revoked["hash_type"] == "UCI"
    assert "Dupont" not in str(revoked) and first.uvci not in str(revoked)


def test_correction_to_invalid_revokes_without_reissuing(owner: Any, patient: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    correction = screening_correct(
        actor=owner, screening_id=screening.pk, reason="control line missing", results={"sars-cov-2": RESULT_INVALID}
    )
    assert certificate_for_screening(screening=correction) is None
    assert Certificate.objects.get().revoked_at is not None


def test_dcc_verify_command_accepts_relais_certificates(owner: Any, patient: Any, tmp_path: Path) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    certificate = certificate_for_screening(screening=screening)
    assert certificate is not None
    pem = tmp_path / "signer.pem"
    pem.write_bytes(signer().certificate.public_bytes(serialization.Encoding.PEM))
    out = io.StringIO()
    call_command("dcc_verify", certificate.hc1, "--cert", str(pem), stdout=out)
    assert certificate.uvci in out.getvalue()


def test_staff_page_shows_the_certificate(owner: Any, screening: Any, as_user: Any) -> None:
    page = as_user(owner).get(f"/screenings/{screening.pk}/").content.decode()
    assert 'data-testid="certificate"' in page and certificate_for_screening(screening=screening).uvci in page  # type: ignore[union-attr]


def test_signer_key_is_private_and_outside_served_folders() -> None:
    from django.conf import settings

    key_file = Path(settings.RELAIS_DCC["key_file"])
    signer()
    assert key_file.stat().st_mode & 0o077 == 0
    assert not str(key_file.resolve()).startswith(str(Path(settings.STATIC_ROOT).resolve()))


def test_dcc_verify_reads_stdin(owner: Any, patient: Any, tmp_path: Path) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    certificate = certificate_for_screening(screening=screening)
    assert certificate is not None
    pem = tmp_path / "signer.pem"
    pem.write_bytes(signer().certificate.public_bytes(serialization.Encoding.PEM))
    tampered = certificate.hc1[:-6] + ("A" if certificate.hc1[-6] != "A" else "B") + certificate.hc1[-5:]
    result = subprocess.run(
        [sys.executable, "manage.py", "dcc_verify", "--cert", str(pem)],
        input=tampered,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"RELAIS_ENV": "test", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode != 0 and "invalid" in result.stderr


def test_very_long_names_are_shortened_and_never_block_the_recording(owner: Any) -> None:
    long_first_names = " ".join(["Marie-Christine"] * 9)  # 143 characters: the form allows it, the DCC schema caps at 80
    patient = patient_register(actor=owner, identity=identity(first_names=long_first_names, nir="", last_name="LONGUE"))
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    certificate = certificate_for_screening(screening=screening)
    assert certificate is not None
    payload = verify_hc1(certificate.hc1, certificate=signer().certificate, at=timezone.now())
    assert len(payload["nam"]["gn"]) <= 80 and payload["nam"]["gn"].startswith("Marie-Christine")


def test_a_certificate_that_cannot_be_built_does_not_stop_the_result(owner: Any, patient: Any, monkeypatch: Any) -> None:
    from relais.certificates import services
    from relais.certificates.errors import PayloadInvalid

    def refuse(**_kwargs: Any) -> Any:
        raise PayloadInvalid("$.nam fails schema rule 'x'")

    monkeypatch.setattr(services, "build_test_payload", refuse)
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    assert screening.outbox.exists() and certificate_for_screening(screening=screening) is None
