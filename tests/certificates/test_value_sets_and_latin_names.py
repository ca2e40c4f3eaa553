"""Issue 16 item 5: a certificate is never issued with an empty fnt (the passport's Latin spelling is used for a name no
ICAO table covers, else the certificate is refused naming what to enter); dcc_verify checks the payload's codes
against the EU value sets and reports `invalid: value_set: tt=XX not in test-type`."""

from __future__ import annotations

import io
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.management import call_command
from django.core.management.base import CommandError

from relais.certificates import sign_hc1, valuesets
from relais.certificates.errors import CannotIssue, DccInvalid
from relais.certificates.keys import Signer, generate_dev_signer
from relais.certificates.management.commands.dcc_verify import EXIT_CODES, Command
from relais.certificates.models import CertificateRefusal, RefusalReason
from relais.certificates.services import certificate_for_screening
from relais.intake.services import screening_record
from tests.factories import screening_input

from . import NOW, make_payload

AT = (NOW + timedelta(hours=1)).isoformat()
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "eu-dcc" / "eu-dcc-valuesets"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return generate_dev_signer(now=NOW - timedelta(days=1))


def _signed(signer: Signer, payload: dict[str, Any]) -> str:
    return sign_hc1(payload, signer_key=signer.key, kid=signer.kid, issued_at=NOW, expires_at=NOW + timedelta(hours=48))


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(Command(), *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _cert(signer: Signer) -> str:
    import base64

    return base64.b64encode(signer.certificate.public_bytes(Encoding.DER)).decode()


def _with(payload: dict[str, Any], **test: str) -> dict[str, Any]:
    return {**payload, "t": [{**payload["t"][0], **test}]}


def test_a_validly_signed_certificate_with_a_test_type_outside_the_value_set_is_invalid(signer: Signer) -> None:
    good = _signed(signer, make_payload())
    assert _run(good, "--cert", _cert(signer), "--at", AT)[0] == 0
    code, out, err = _run(_signed(signer, _with(make_payload(), tt="XX")), "--cert", _cert(signer), "--at", AT)
    assert code == EXIT_CODES["value_set"] != 0 and out == ""
    assert err.strip() == "invalid: value_set: tt=XX not in test-type"


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("tg", "12345", "disease-agent-targeted"),
        ("ma", "99999", "test-manf"),
        ("tr", "125154007", "test-result"),
        ("co", "XX", "country-2-codes"),
    ],
)
def test_every_coded_field_is_checked(signer: Signer, field: str, value: str, name: str) -> None:
    code, _, err = _run(_signed(signer, _with(make_payload(), **{field: value})), "--cert", _cert(signer), "--at", AT)
    assert code == EXIT_CODES["value_set"] and err.strip() == f"invalid: value_set: {field}={value} not in {name}"


def test_valuesets_dir_option(signer: Signer, tmp_path: Path) -> None:
    for path in valuesets.BUNDLED.glob("*.json"):
        shutil.copy(path, tmp_path / path.name.replace("-example", ""))  # the repository's other file name reads the same
    data = json.loads((tmp_path / "test-type.json").read_text())
    data["valueSetValues"]["XX"] = {"display": "local test type", "active": True}
    (tmp_path / "test-type.json").write_text(json.dumps(data))
    text = _signed(signer, _with(make_payload(), tt="XX"))
    assert _run(text, "--cert", _cert(signer), "--at", AT, "--valuesets", str(tmp_path))[0] == 0
    (tmp_path / "test-result.json").unlink()
    with pytest.raises(CommandError, match="covid-19-lab-result"):
        _run(text, "--cert", _cert(signer), "--at", AT, "--valuesets", str(tmp_path / "nowhere"))


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared data folder is not next to the checkout")
def test_the_bundled_copy_is_the_shared_one() -> None:
    for path in valuesets.BUNDLED.glob("*.json"):
        assert path.read_bytes() == (SHARED / path.name).read_bytes()


def test_check_value_sets_passes_what_relais_issues() -> None:
    valuesets.check_value_sets(make_payload(detected=True), valuesets.load())
    with pytest.raises(DccInvalid, match="value_set: tt=XX not in test-type"):
        valuesets.check_value_sets(_with(make_payload(), tt="XX"), valuesets.load())


# --- names in a script no table covers ----------------------------------------------------------------------------


def test_the_passport_latin_spelling_fills_fnt_and_gnt() -> None:
    payload = make_payload(family_name="王", given_name="小明", latin_family_name="WANG", latin_given_name="XIAO MING")
    assert payload["nam"] == {"fn": "王", "fnt": "WANG", "gn": "小明", "gnt": "XIAO<MING"}
    with pytest.raises(CannotIssue) as refused:
        make_payload(family_name="王", given_name="小明")
    assert refused.value.reason == "family_name_script"
    with pytest.raises(CannotIssue) as refused:
        make_payload(family_name="王", given_name="小明", latin_family_name="WANG")
    assert refused.value.reason == "given_name_script"
    # Greek, Cyrillic and Arabic go through the ICAO tables; a Latin spelling, when recorded, wins.
    assert make_payload(family_name="Иванов", given_name="Пётр")["nam"]["fnt"] == "IVANOV"
    assert make_payload(family_name="Иванов", given_name="Пётр", latin_family_name="IVANOFF")["nam"]["fnt"] == "IVANOFF"


def test_never_an_empty_fnt(owner: Any, patient: Any) -> None:
    patient.last_name, patient.first_names = "김", "민준"
    patient.save()
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    assert certificate_for_screening(screening=screening) is None
    refusal = CertificateRefusal.objects.get(screening=screening)
    assert refusal.reason == RefusalReason.FAMILY_NAME_SCRIPT
    assert "Last name in Latin letters" in str(refusal.get_reason_display())
    patient.latin_last_name, patient.latin_first_names = "KIM", "MINJUN"
    patient.save()
    again = screening_record(
        actor=owner, patient_id=patient.pk, data=screening_input(sampled_at=screening.sampled_at - timedelta(minutes=1))
    )
    certificate = certificate_for_screening(screening=again)
    assert certificate is not None
