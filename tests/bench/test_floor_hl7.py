"""bench/floor.py builds the HL7 message the renderer builds (issue 16's ELR shape), so the floor the benchmark compares
against does the same work: one payload rendered both ways, compared segment by segment, field by field, component by
component (and value by value where the floor has the same data)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from relais.transfer.formats import hl7v2
from relais.transfer.payload import PatientPart, ResultPart, TransferPayload

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import floor  # noqa: E402

SAMPLED = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
PHARMACY_ID = uuid.UUID("5b0c3f0e-8d4e-4c53-9a55-8f1d2c3b4a59")
RECORDER_ID = uuid.UUID("1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5")
SERIES = uuid.UUID("0f1e2d3c-4b5a-4697-8877-665544332211")


def _case(*, rpps: str, patient_phone: str, pharmacy_phone: str, nir: str, address: bool) -> dict[str, Any]:
    identity = {
        "last_name": "Dupont-Lefèvre|^&~\\",
        "first_names": "Anne Marie",
        "sex": "F",
        "date_of_birth": date(1980, 5, 17),
        "nir": nir,
        "address_line": "12 rue de la Paix" if address else "",
        "postcode": "75002" if address else "",
        "city": "Paris" if address else "",
        "country": "FR",
        "phone": patient_phone,
        "email": "anne@example.org",
    }
    pharmacy = {"name": "Pharmacie de l'Opéra", "address_line": "1 place de l'Opéra", "postcode": "75009", "city": "Paris"}
    return {"identity": identity, "pharmacy": pharmacy, "rpps": rpps, "pharmacy_phone": pharmacy_phone}


CASES = {
    "rpps, french numbers, nir": _case(
        rpps="10100000008", patient_phone="+33612345678", pharmacy_phone="+33142000000", nir="180057512345678", address=True
    ),
    "no rpps, foreign mobile, no pharmacy phone": _case(rpps="", patient_phone="+4915123456789", pharmacy_phone="", nir="", address=False),
}


def _render_both(case: dict[str, Any]) -> tuple[str, str]:
    who, pharmacy = case["identity"], case["pharmacy"]
    now = SAMPLED + timedelta(minutes=20)
    payload = TransferPayload(
        message_id="m" * 20,
        created_at=now,
        status="final",
        screening_id=uuid.uuid4(),
        series_id=SERIES,
        version=1,
        sampled_at=SAMPLED,
        recorded_at=now,
        specimen_snomed="258500001",
        specimen_display="Nasopharyngeal swab",
        device_id="1232",
        device_name="Panbio COVID-19 Ag Rapid Test",
        device_manufacturer="Abbott",
        pharmacy_name=pharmacy["name"],
        pharmacy_finess="750000010",
        pharmacy_address_line=pharmacy["address_line"],
        pharmacy_postcode=pharmacy["postcode"],
        pharmacy_city=pharmacy["city"],
        pharmacy_phone=case["pharmacy_phone"],
        pharmacy_id=str(PHARMACY_ID),
        patient_pseudonym="a" * 32,
        patient=PatientPart(**who, identity_verified=True),
        results=(
            ResultPart(
                analyte="sars-cov-2",
                analyte_label="SARS-CoV-2",
                loinc_code="94558-4",
                loinc_display=floor.LOINC_DISPLAY["94558-4"],
                result_snomed="260415000",
                result_display="Not detected (negative)",
            ),
        ),
        recorder_rpps=case["rpps"],
        recorder_family="MARTIN",
        recorder_given="Claire",
        recorder_id=str(RECORDER_ID),
        patient_id=str(uuid.uuid4()),
    )
    sender = floor.Hl7Sender(
        pharmacy_id=str(PHARMACY_ID),
        finess="750000010",
        phone=case["pharmacy_phone"],
        recorder_id=str(RECORDER_ID),
        recorder_rpps=case["rpps"],
        recorder_full_name="Claire MARTIN",
        oid_root=settings.RELAIS_OID_ROOT,
        **pharmacy,
    )
    built = floor.hl7_message(
        sender=sender,
        control_id="m" * 20,
        identity=who,
        pseudonym="a" * 32,
        series=str(SERIES),
        device="1232",
        device_name="Panbio COVID-19 Ag Rapid Test",
        results=[("94558-4", "260415000")],
        specimen="258500001",
        sampled=SAMPLED,
        recorded=now,
        now=now,
    )
    return hl7v2.render_oru_r01(payload), built


def _shape(message: str) -> list[tuple[str, list[list[int]]]]:
    """Per segment: its name and, per field, the number of subcomponents of each component (repetitions joined)."""
    out = []
    for segment in message.split("\r"):
        name, *fields = segment.split("|")
        out.append((name, [[len(component.split("&")) for component in field.split("^")] if field else [] for field in fields]))
    return out


@pytest.mark.parametrize("name", CASES)
def test_the_floor_builds_the_renderers_message(name: str) -> None:
    rendered, built = _render_both(CASES[name])
    assert [s[:3] for s in built.split("\r")] == [s[:3] for s in rendered.split("\r")] == hl7v2.segment_order(1)
    for ours, theirs in zip(_shape(built), _shape(rendered), strict=True):
        assert len(ours[1]) == len(theirs[1]), f"{ours[0]}: {len(ours[1])} fields in the floor, {len(theirs[1])} rendered"
        assert ours == theirs, ours[0]
    # The same data gives the same text (the renderer's own choices: OIDs, profile, software version, XTN, XCN, EI).
    assert built.split("\r") == rendered.split("\r")


def test_the_floor_builds_it_without_django() -> None:
    """The floor is bare Python: its message is built with Django unimportable."""
    code = (
        "import sys; sys.modules['django'] = None; sys.path.insert(0, 'bench'); import floor, uuid\n"
        "from datetime import UTC, date, datetime\n"
        "sender = floor.Hl7Sender(pharmacy_id=str(uuid.uuid4()), finess='750000010', name='P', address_line='1 rue', postcode='75001',"
        " city='Paris', phone='', recorder_id=str(uuid.uuid4()), recorder_rpps='', recorder_full_name='Claire MARTIN')\n"
        "who = dict(last_name='A', first_names='B', sex='F', date_of_birth=date(1980, 1, 1), nir='', address_line='', postcode='',"
        " city='', country='FR', phone='+33612345678', email='')\n"
        "now = datetime.now(UTC)\n"
        "print(floor.hl7_message(sender=sender, control_id='x', identity=who, pseudonym='p', series='s', device='1232', device_name='D',"
        " results=[('94558-4', '260415000')], specimen='258500001', sampled=now, recorded=now, now=now).count(chr(13)))\n"
        "assert not any(name == 'django' or name.startswith(('django.', 'relais.transfer', 'relais.core')) for name in sys.modules"
        " if sys.modules[name] is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6"  # MSH SFT PID ORC OBR OBX SPM
