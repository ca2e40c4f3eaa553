"""The send path renders without per-message schema parsing; these tests are the proof that what it renders is valid.

HL7 v2.5.1: every rendered message parses with hl7apy STRICT and passes ``Message.validate()``, and every identity
value reads back unchanged, for names in every script and every delimiter (hypothesis). FHIR R4: every rendered
bundle validates with fhir.resources (R4B models) and with the official FHIR R4 JSON schema (tests/data/fhir/), and
is byte for byte what the former model-based renderer (tests/transfer/fhir_reference.py) wrote. The run-time
structural checks refuse a broken message.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fhir.resources.R4B.bundle import Bundle
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.core.validators import country_codes
from relais.screenings.vocab import ANALYTES, RESULTS, SPECIMENS
from relais.transfer.formats import fhir, hl7v2
from relais.transfer.formats.hl7v2 import RenderError
from relais.transfer.payload import TransferPayload
from tests.transfer import fhir_reference
from tests.transfer.payload_factory import sample_patient, sample_payload, sample_result

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "fhir" / "fhir.schema.json"
PROOF = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")

# Names as people write them, one script after another (and the marks that travel with them).
SCRIPT_NAMES = [
    "Dupont-Lefèvre",
    "Ægidius Øster",
    "Łukasz Żółć",
    "Ğülşen Çağlar",
    "Nguyễn Thị Ánh",
    "Παπαδοπούλου",
    "Жуковский",
    "Սարգսյան",
    "ჯაფარიძე",
    "محمد بن سلمان",
    "כהן",
    "देवनागरी शर्मा",
    "সেন",
    "சுப்ரமணியம்",
    "สมชาย ใจดี",
    "ສົມພອນ",
    "王小明",
    "やまだ タロウ",
    "김민준",
    "Ṭhākur ḍ",
    "e\u0301le\u0300ve",  # combining accents
    "\u200fעברית\u200e",  # direction marks
    "𝔊𝔬𝔱𝔥𝔦𝔠 😀",  # outside the BMP
    "O'Neil | d'Artagnan ^ & ~ \\",
    "\\F\\ \\X0D\\ \\E\\",  # literal escape sequences
    "Jean\u00a0Marc\u2003Ruiz",  # no-break and em spaces
]
DELIMITERS = [*"|^~\\&\r\n\t\x0b\x1c\x7f\u0085\u2028\u2029", "\\F\\", "\\X0D\\", "\\.br\\"]

piece = st.one_of(st.sampled_from(SCRIPT_NAMES), st.sampled_from(DELIMITERS), st.characters(codec="utf-8"))
name_text = st.lists(piece, min_size=1, max_size=4).map("".join).filter(lambda v: len(hl7v2.escape(v)) <= hl7v2.ST_MAX)
optional_text = st.one_of(st.just(""), name_text)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=2)), timezone(timedelta(hours=-3, minutes=-30))])
moments = st.builds(
    lambda when, micro, tz: when.replace(microsecond=micro, tzinfo=tz),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31)),
    st.sampled_from([0, 1, 120000, 999999]),
    offsets,
)
results = st.lists(
    st.builds(
        lambda analyte, result, display: sample_result(
            analyte=analyte,
            analyte_label=ANALYTES[analyte].label,
            loinc_code=ANALYTES[analyte].rapid_antigen_loinc,
            loinc_display=display,
            result_snomed=result,
            result_display=str(RESULTS[result]),
        ),
        st.sampled_from(sorted(ANALYTES)),
        st.sampled_from(sorted(RESULTS)),
        st.one_of(st.just("SARS-CoV-2 Ag rapid immunoassay"), name_text),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda r: r.analyte,
)
patients = st.one_of(
    st.none(),
    st.builds(
        sample_patient,
        last_name=name_text,
        first_names=name_text,
        sex=st.sampled_from("FMOU"),
        date_of_birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)),
        nir=st.sampled_from(["", "294037512000591", "1850275123456 12"]),
        address_line=optional_text,
        postcode=st.sampled_from(["", "75002", "2A004", "B-1000"]),
        city=optional_text,
        country=st.sampled_from(["", *sorted(country_codes())]),
        phone=st.sampled_from(["", "+33612345678"]),
        email=st.sampled_from(["", "a.b+c@example.org"]),
    ),
)
payloads = st.builds(
    sample_payload,
    status=st.sampled_from(["final", "corrected", "removed"]),
    version=st.integers(1, 5),
    created_at=moments,
    sampled_at=moments,
    recorded_at=moments,
    specimen_snomed=st.sampled_from(sorted(SPECIMENS)),
    specimen_display=optional_text,
    device_id=st.sampled_from(["1232", "1833", "AT-123/x"]),
    device_name=optional_text,
    device_manufacturer=optional_text,
    pharmacy_name=name_text,
    pharmacy_address_line=optional_text,
    pharmacy_city=optional_text,
    pharmacy_phone=st.sampled_from(["", "+33142345678", "+33612345678", "+14155550123"]),
    patient=patients,
    results=results.map(tuple),
)


# --- HL7 v2.5.1 ------------------------------------------------------------------------------------


def strict(text: str) -> Any:
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate()
    return message


def component(segment: str, field: int, number: int) -> str:
    parts = segment.split("|")
    value = parts[field] if field < len(parts) else ""
    components = value.split("^")
    return components[number - 1] if number <= len(components) else ""


@PROOF
@given(payloads)
def test_every_rendered_oru_r01_passes_hl7apy_strict_validation(payload: TransferPayload) -> None:
    text = hl7v2.render_oru_r01(payload)

    message = strict(text)
    hl7v2.validate_message(text)  # the same check the renderer ran on every message before issue 13
    assert message.msh.msh_10.to_er7() == payload.message_id
    segments = text.split("\r")
    assert [s[:3] for s in segments] == ["MSH", "SFT", "PID", "ORC", "OBR", *["OBX"] * len(payload.results), "SPM"]
    pid = segments[2]
    if payload.patient is not None:
        written = [hl7v2.unescape(component(pid, 5, n)) for n in (1, 2)]
        assert written == [BREAKS.sub(" ", payload.patient.last_name), BREAKS.sub(" ", payload.patient.first_names)]
    else:
        assert component(pid, 5, 1) == "ANONYME"
    assert hl7v2.unescape(component(segments[3], 21, 1)) == hl7v2.unescape(hl7v2._label(payload.pharmacy_name))


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_names_in_every_script_read_back_through_hl7apy(name: str) -> None:
    payload = sample_payload(patient=sample_patient(last_name=name, first_names=name, city=name, address_line=name))
    message = strict(hl7v2.render_oru_r01(payload))

    pid = message.oru_r01_patient_result.oru_r01_patient.pid
    family = pid.pid_5.xpn_1.to_er7()
    assert hl7v2.unescape(family) == BREAKS.sub(" ", name)


def test_batches_of_rendered_messages_split_back_into_valid_messages() -> None:
    batch = hl7v2.render_batch(
        [sample_payload(patient=sample_patient(last_name=n)) for n in SCRIPT_NAMES], batch_id="b1", created_at=datetime.now(UTC)
    )
    for message in hl7v2.split_batch(batch):
        strict(message)


GOOD = hl7v2._oru_segments(sample_payload())


@pytest.mark.parametrize(
    "broken",
    [
        [GOOD[0], *GOOD[2:]],  # no SFT
        [*GOOD[:2], *GOOD[3:]],  # no PID
        [*GOOD[:3], GOOD[4], GOOD[3], *GOOD[5:]],  # OBR before ORC
        GOOD[:-1],  # no SPM
        [*GOOD[:2], GOOD[2] + "\rPID|2", *GOOD[3:]],  # a segment break inside a field
        [*GOOD[:2], GOOD[2] + "\x1c", *GOOD[3:]],  # MLLP framing inside a field
        [*GOOD[:2], GOOD[2] + "|" * 20, *GOOD[3:]],  # more fields than PID has
        [GOOD[0].replace("|P|2.5.1", "X|P|2.5.1"), *GOOD[1:]],  # MSH-10 is not the message id
        [*GOOD[:5], GOOD[5].replace("|F|", "|X|"), GOOD[6]],  # OBX-11 unknown status
        ["MSH|" + GOOD[0][9:], *GOOD[1:]],  # no encoding characters
    ],
)
def test_hl7_structural_check_refuses_a_broken_message(broken: list[str]) -> None:
    payload_id = GOOD[0].split("|")[9]
    hl7v2.check_structure(GOOD, control_id=payload_id, results=1)
    with pytest.raises(RenderError):
        hl7v2.check_structure(broken, control_id=payload_id, results=1)


def test_a_renderer_bug_is_refused_before_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    real = hl7v2._pid
    monkeypatch.setattr(hl7v2, "_pid", lambda payload: real(payload) + "\rZZZ|1")
    with pytest.raises(RenderError):
        hl7v2.render_oru_r01(sample_payload())


# --- FHIR R4 ---------------------------------------------------------------------------------------

# The pharmacist who recorded the version (FHIR Practitioner): with or without RPPS, names in any script, or the
# account gone (nothing at all).
recorders = st.fixed_dictionaries(
    {
        "recorder_rpps": st.sampled_from(["", "10001234567"]),
        "recorder_id": st.sampled_from(["", "42", "3f2c1b0a-9e8d-4c7b-8a69-5f4e3d2c1b0a"]),
        "recorder_family": optional_text,
        "recorder_given": optional_text,
    }
)
fhir_payloads = st.builds(lambda payload, recorder: dataclasses.replace(payload, **recorder), payloads, recorders)
RECORDER = {"recorder_rpps": "10001234567", "recorder_family": "MARTIN", "recorder_given": "Léa", "recorder_id": "42"}


@functools.cache
def schema_validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0"
    return jsonschema.Draft6Validator(schema)


@functools.cache
def resource_validator(resource_type: str) -> Any:
    definitions = schema_validator().schema["definitions"]
    return jsonschema.Draft6Validator({"$ref": f"#/definitions/{resource_type}", "definitions": definitions})


def schema_errors(bundle: dict[str, Any], *, whole: bool = False) -> list[str]:
    """Errors against the R4 schema. ``whole``: the Bundle as one document (the schema's oneOf tries every resource
    type for each entry: 0.1 s); otherwise each entry's resource against its own definition, as the schema's
    discriminator on resourceType says, and the Bundle around them."""
    if whole:
        return [f"{list(e.absolute_path)}: {e.message}" for e in schema_validator().iter_errors(bundle)]
    shell = {**bundle, "entry": [{k: v for k, v in entry.items() if k != "resource"} for entry in bundle["entry"]]}
    errors = [f"Bundle {list(e.absolute_path)}: {e.message}" for e in resource_validator("Bundle").iter_errors(shell)]
    for index, entry in enumerate(bundle["entry"]):
        resource = entry["resource"]
        for error in resource_validator(resource["resourceType"]).iter_errors(resource):
            errors.append(f"entry[{index}] {list(error.absolute_path)}: {error.message}")
    return errors


def normalised(payload: TransferPayload) -> TransferPayload:
    """The payload with whitespace other than a space written as one: what the renderer does to every FHIR string
    (the R4 schema refuses no-break spaces and the like), so the former renderer must agree with it byte for byte."""

    def fix(value: Any) -> Any:
        return re.sub(r"[^\S \r\n\t]", " ", value) if isinstance(value, str) else value

    def fixed(obj: Any) -> Any:
        return type(obj)(**{name: fix(getattr(obj, name)) for name in obj.__dataclass_fields__})

    patient = fixed(payload.patient) if payload.patient is not None else None
    values = {name: fix(getattr(payload, name)) for name in payload.__dataclass_fields__}
    return TransferPayload(**{**values, "patient": patient, "results": tuple(fixed(r) for r in payload.results)})


@PROOF
@given(fhir_payloads)
def test_every_rendered_bundle_is_valid_fhir_and_what_the_model_based_renderer_wrote(payload: TransferPayload) -> None:
    text = fhir.render_bundle(payload)

    assert text == fhir_reference.render_bundle(normalised(payload))  # byte for byte
    Bundle.model_validate_json(text)
    assert schema_errors(json.loads(text)) == []


@pytest.mark.parametrize(
    "payload",
    [
        sample_payload(),
        sample_payload(patient=None, status="removed"),
        sample_payload(
            status="corrected",
            results=(sample_result(), sample_result(analyte="rsv", loinc_code="72885-7")),
            patient=sample_patient(last_name=SCRIPT_NAMES[-1], address_line="", postcode="", city="", phone="", email="", nir=""),
            device_name="",
        ),
        sample_payload(**RECORDER),
        sample_payload(**{**RECORDER, "recorder_rpps": "", "recorder_family": "", "recorder_given": SCRIPT_NAMES[16]}),
    ],
    ids=["identified", "pseudonymous", "corrected-multiplex-sparse", "practitioner-rpps", "practitioner-staff-id"],
)
def test_bundles_validate_against_the_whole_r4_schema(payload: TransferPayload) -> None:
    bundle = json.loads(fhir.render_bundle(payload))
    assert schema_errors(bundle, whole=True) == []
    assert schema_errors(bundle) == []


def test_the_schema_check_is_not_a_rubber_stamp() -> None:
    bundle = json.loads(fhir.render_bundle(sample_payload()))
    bundle["entry"][1]["resource"]["gender"] = "woman"
    bundle["entry"][4]["resource"]["status"] = "done"
    bundle["entry"][1]["resource"]["name"][0]["family"] = "a\u00a0b"  # what the renderer writes as a space
    assert len(schema_errors(bundle)) >= 3
    assert schema_errors(bundle, whole=True)


def test_unicode_spaces_become_plain_spaces_in_fhir() -> None:
    text = fhir.render_bundle(sample_payload(patient=sample_patient(last_name="Jean\u00a0Marc\u2003Ruiz", first_names="\u3000Léa\u3000")))
    (patient,) = [e["resource"] for e in json.loads(text)["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert patient["name"][0] == {"use": "official", "family": "Jean Marc Ruiz", "given": ["Léa"]}


def test_datetimes_are_written_as_fhir_resources_wrote_them() -> None:
    for moment in [
        datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, 0, 5, tzinfo=UTC),
        datetime(2024, 7, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2))),
        datetime(1999, 12, 31, 0, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    ]:
        payload = sample_payload(created_at=moment, sampled_at=moment, recorded_at=moment)
        assert fhir.render_bundle(payload) == fhir_reference.render_bundle(payload)


def test_fhir_structural_check_refuses_a_broken_bundle() -> None:
    good = fhir.bundle_dict(sample_payload())
    fhir.check_structure(good)
    with_practitioner = fhir.bundle_dict(sample_payload(**RECORDER))
    fhir.check_structure(with_practitioner)
    assert with_practitioner["entry"][1]["resource"]["resourceType"] == "Practitioner"
    broken_ones = []
    for change in (
        lambda b: b["entry"][1]["resource"].pop("identifier"),
        lambda b: b["entry"][1]["request"].update(method="POST", url="Practitioner", ifNoneExist="identifier=x|y"),
        lambda b: b["entry"][5]["resource"]["performer"][0].update(reference="urn:uuid:elsewhere"),
        lambda b: b["entry"][-1]["resource"]["performer"][0].update(reference="urn:uuid:elsewhere"),
    ):
        broken = json.loads(json.dumps(with_practitioner))
        change(broken)
        broken_ones.append(broken)
    for change in (
        lambda b: b.update(type="batch"),
        lambda b: b["entry"][4]["resource"].pop("status"),
        lambda b: b["entry"][4]["resource"].update(subject={"reference": "urn:uuid:elsewhere"}),
        lambda b: b["entry"][2]["request"].update(url="Patient"),
        lambda b: b["entry"].pop(4),
        lambda b: b["entry"][0]["resource"].update(resourceType="Location"),
    ):
        broken = json.loads(json.dumps(good))
        change(broken)
        broken_ones.append(broken)
    for broken in broken_ones:
        with pytest.raises(RenderError):
            fhir.check_structure(broken)
