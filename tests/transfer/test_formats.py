"""HL7 v2.5.1 and FHIR R4 renderers: structure, identity or pseudonym, escaping, vocabularies, batches, acknowledgements."""

from __future__ import annotations

import functools
import json
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message, parse_segment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.core.validators import country_codes
from relais.screenings.vocab import RESULT_DETECTED, RESULT_INVALID
from relais.transfer.formats import fhir, hl7v2
from relais.transfer.formats.hl7v2 import Ack, MalformedAck
from relais.transfer.identifiers import namespace
from relais.transfer.payload import TransferPayload, UnmappableValue
from tests.transfer.payload_factory import sample_patient, sample_payload, sample_result

BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
SPACES = re.compile(r"[^\S ]")  # FHIR strings: other whitespace is written as a space (the R4 JSON schema refuses it)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Identity values that must appear in an identified message and never in a pseudonymous one.
IDENTITY = {
    "last_name": "VAUQUELIN-ZORN",
    "first_names": "Anne-Sixtine",
    "date_of_birth": date(1987, 11, 23),
    "nir": "287112A04512345",
    "address_line": "7 impasse des Lilas",
    "postcode": "69100",
    "city": "Villeurbanne",
    "country": "BE",
    "phone": "+32470123456",
    "email": "a.sixtine@example.net",
}
IDENTITY_STRINGS = [v for k, v in IDENTITY.items() if isinstance(v, str) and k != "country"]


def identified(**overrides: Any) -> TransferPayload:
    return sample_payload(patient=sample_patient(**IDENTITY), **overrides)


# --- helpers -------------------------------------------------------------------------------------


def strict(text: str) -> Any:
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate()
    return message


def segments(text: str, name: str) -> list[str]:
    return [s for s in text.split("\r") if s.split("|", 1)[0] == name]


def field(segment: str, number: int) -> str:
    parts = segment.split("|")
    index = number - 1 if segment.startswith(("MSH", "FHS", "BHS")) else number
    return parts[index] if index < len(parts) else ""


def comp(value: str, number: int) -> str:
    parts = value.split("^")
    return parts[number - 1] if number <= len(parts) else ""


def shape(text: str) -> list[tuple[str, list[tuple[int, int, int]]]]:
    """Segment names and, per field, how many repetitions/components/subcomponents: the structure."""
    return [(s[:3], [(f.count("~"), f.count("^"), f.count("&")) for f in s.split("|")[2:]]) for s in text.split("\r")]


def entries(bundle_text: str) -> list[dict[str, Any]]:
    return list(json.loads(bundle_text)["entry"])


def resources(bundle_text: str, resource_type: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in entries(bundle_text) if e["resource"]["resourceType"] == resource_type]


# --- HL7 v2.5.1 ORU^R01 --------------------------------------------------------------------------


def test_oru_r01_is_strictly_valid_with_the_expected_segments_and_header() -> None:
    payload = sample_payload()
    text = hl7v2.render_oru_r01(payload)

    message = strict(text)
    assert message.msh.msh_10.to_er7() == payload.message_id
    assert [s[:3] for s in text.split("\r")] == ["MSH", "SFT", "PID", "ORC", "OBR", "OBX", "SPM"]
    assert "\n" not in text and not text.endswith("\r")
    msh = segments(text, "MSH")[0]
    application = f"RELAIS^{namespace('application').oid}^ISO"
    facility = f"750000010^2.25.{uuid.UUID(payload.pharmacy_id).int}^ISO"  # the pharmacy's UUID-derived OID (issue 16)
    assert msh.startswith(f"MSH|^~\\&|{application}|{facility}|SIDEP|SIDEP|20240301102030+0000||ORU^R01^ORU_R01|")
    assert [field(msh, n) for n in (10, 11, 12, 15, 16)] == [payload.message_id, "P", "2.5.1", "AL", "NE"]


def test_orders_identify_the_series_for_every_version() -> None:
    payload = sample_payload()
    text = hl7v2.render_oru_r01(payload)
    order = strict(text).oru_r01_patient_result.oru_r01_order_observation

    for segment in (order.orc, order.obr):  # placer and filler: the series, the same for every version (issue 16)
        assert segment.children[1].ei_1.to_er7() == str(payload.series_id)  # ORC-2 / OBR-2 placer
        assert segment.children[2].ei_1.to_er7() == str(payload.series_id)  # ORC-3 / OBR-3 filler
    assert str(payload.screening_id) not in text
    orc = segments(text, "ORC")[0]
    assert comp(field(orc, 21), 1) == "Pharmacie du Test" and comp(field(orc, 21), 10) == "750000010"
    assert field(orc, 22) == "1 rue du Test^^Paris^^75010^FRA^B"


def test_observations_are_coded_loinc_and_snomed() -> None:
    payload = sample_payload(results=(sample_result(), sample_result(analyte="rsv", loinc_code="72885-7", result_snomed=RESULT_DETECTED)))
    text = hl7v2.render_oru_r01(payload)
    strict(text)

    obr = segments(text, "OBR")[0]
    assert comp(field(obr, 4), 1) == "94558-4" and comp(field(obr, 4), 3) == "LN"
    assert field(obr, 7) == "20240301100000+0100"
    obx = segments(text, "OBX")
    assert [field(s, 1) for s in obx] == ["1", "2"]
    assert [field(s, 2) for s in obx] == ["CWE", "CWE"]
    assert [(comp(field(s, 3), 1), comp(field(s, 3), 3)) for s in obx] == [("94558-4", "LN"), ("72885-7", "LN")]
    assert [(comp(field(s, 5), 1), comp(field(s, 5), 3)) for s in obx] == [("260415000", "SCT"), (RESULT_DETECTED, "SCT")]
    assert field(obx[0], 14) == "20240301100000+0100"
    assert field(obx[0], 17) == "1232^Panbio COVID-19 Ag Rapid Test^99EUDEVICE"
    spm = segments(text, "SPM")[0]
    assert field(spm, 4) == "258500001^Nasopharyngeal swab^SCT" and field(spm, 17) == "20240301100000+0100"


@pytest.mark.parametrize(("status", "obx_11", "obr_25"), [("final", "F", "F"), ("corrected", "C", "C"), ("removed", "D", "C")])
def test_result_status(status: str, obx_11: str, obr_25: str) -> None:
    text = hl7v2.render_oru_r01(
        sample_payload(status=status, results=(sample_result(), sample_result(analyte="rsv", loinc_code="72885-7")))
    )
    strict(text)
    assert [field(s, 11) for s in segments(text, "OBX")] == [obx_11, obx_11]
    assert field(segments(text, "OBR")[0], 25) == obr_25


def test_pid_carries_the_identity() -> None:
    payload = identified()
    pid = segments(hl7v2.render_oru_r01(payload), "PID")[0]

    assert field(pid, 3).split("~") == [
        f"{payload.patient_pseudonym}^^^RELAIS&{namespace('pseudonym').oid}&ISO^PI",
        "287112A04512345^^^INS-NIR&1.2.250.1.213.1.4.8&ISO^NH",
    ]
    assert field(pid, 5) == "VAUQUELIN-ZORN^Anne-Sixtine^^^^^L"
    assert (field(pid, 7), field(pid, 8)) == ("19871123", "F")
    assert field(pid, 11) == "7 impasse des Lilas^^Villeurbanne^^69100^BEL^H"
    assert field(pid, 13).split("~") == ["^PRN^CP^^32^470^123456^^^^^+32470123456", "^NET^Internet^a.sixtine@example.net"]


def test_pid_without_optional_data() -> None:
    patient = sample_patient(nir="", address_line="", postcode="", city="", country="", phone="", email="")
    pid = segments(hl7v2.render_oru_r01(sample_payload(patient=patient)), "PID")[0]
    assert field(pid, 3).count("~") == 0
    assert field(pid, 11) == "" and field(pid, 13) == ""
    (resource,) = resources(fhir.render_bundle(sample_payload(patient=patient)), "Patient")
    assert (
        set(resource) == {"resourceType", "meta", "extension", "identifier", "name", "gender", "birthDate"}
        and len(resource["identifier"]) == 1
    )


def test_pseudonymous_payload_only_the_pseudonym_leaves() -> None:
    identified_text = hl7v2.render_oru_r01(identified())
    without = hl7v2.render_oru_r01(sample_payload(patient=None))
    strict(without)

    for value in [*IDENTITY_STRINGS, "19871123", "BEL"]:
        assert value in identified_text
        assert value not in without
    pid = segments(without, "PID")[0]
    assert pid == f"PID|1||5f1c0e2a9b7d4c3e8a6f0b1d2c3e4f5a^^^RELAIS&{namespace('pseudonym').oid}&ISO^PI||ANONYME^^^^^^S"


SPECIALS = "|^~\\&\r\n"
# At most 12 pieces of at most 5 characters: 60 characters, at most 180 once escaped (ST holds 199).
hostile_text = st.lists(
    st.one_of(st.sampled_from([*SPECIALS, "\\F\\", "\\X0D\\", "\x0b", "\x1c", "\u2028", "é"]), st.characters(codec="utf-8")),
    min_size=1,
    max_size=12,
).map("".join)


@functools.cache
def plain_shape() -> list[tuple[str, list[tuple[int, int, int]]]]:
    patient = sample_patient(last_name="x", first_names="x", address_line="x", city="x")
    return shape(hl7v2.render_oru_r01(sample_payload(pharmacy_name="x", patient=patient)))


@FAST
@given(last=hostile_text, first=hostile_text, street=hostile_text, city=hostile_text, pharmacy=hostile_text)
def test_hostile_text_never_breaks_the_structure_and_unescapes_back(last: str, first: str, street: str, city: str, pharmacy: str) -> None:
    hostile = sample_payload(
        pharmacy_name=pharmacy, patient=sample_patient(last_name=last, first_names=first, address_line=street, city=city)
    )
    text = hl7v2.render_oru_r01(hostile)
    strict(text)  # the renderer no longer runs hl7apy on every message: the proof is here

    assert shape(text) == plain_shape()
    pid = segments(text, "PID")[0]
    expected = [BREAKS.sub(" ", v) for v in (last, first, street, city, pharmacy)]
    name, address, facility = field(pid, 5), field(pid, 11), field(segments(text, "ORC")[0], 21)
    assert [hl7v2.unescape(v) for v in (comp(name, 1), comp(name, 2), comp(address, 1), comp(address, 3), comp(facility, 1))] == expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escape_round_trip(value: str) -> None:
    escaped = hl7v2.escape(value)
    assert not set(escaped) & set("|^~&\r\n")
    assert hl7v2.unescape(escaped) == BREAKS.sub(" ", value)


def test_unescape_standard_sequences() -> None:
    assert hl7v2.unescape("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f") == "a|b^c&d~e\\f"
    assert hl7v2.unescape("x\\X0D0A\\y\\.br\\z\\H\\!\\N\\") == "x\r\ny\nz!"
    assert hl7v2.unescape("lone \\ and \\Q\\") == "lone \\ and \\Q\\"


def test_long_identity_is_rejected_long_labels_are_shortened() -> None:
    with pytest.raises(UnmappableValue) as raised:
        hl7v2.render_oru_r01(sample_payload(patient=sample_patient(last_name="|" * 80)))
    assert raised.value.field == "patient.last_name"

    text = hl7v2.render_oru_r01(sample_payload(pharmacy_name="Pharmacie & " * 30, device_name="D" * 300))
    strict(text)
    assert len(comp(field(segments(text, "ORC")[0], 21), 1)) <= hl7v2.ST_MAX
    assert comp(field(segments(text, "OBX")[0], 17), 2) == "D" * hl7v2.ST_MAX


# --- unmappable values: both formats -------------------------------------------------------------

UNMAPPABLE = [
    ("patient.sex", {"patient": sample_patient(sex="X")}),
    ("patient.country", {"patient": sample_patient(country="ZZ")}),
    ("results[0].result_snomed", {"results": (sample_result(result_snomed="123456"),)}),
    ("results[1].result_snomed", {"results": (sample_result(), sample_result(analyte="rsv", result_snomed="positive"))}),
    ("results[0].loinc_code", {"results": (sample_result(loinc_code=""),)}),
    ("results", {"results": ()}),
    ("specimen_snomed", {"specimen_snomed": "999999"}),
    ("status", {"status": "draft"}),
    ("created_at", {"created_at": datetime(2024, 3, 1, 10, 0)}),
    ("pharmacy_finess", {"pharmacy_finess": "75|00"}),
    ("patient_pseudonym", {"patient_pseudonym": ""}),
]


@pytest.mark.parametrize("render", [hl7v2.render_oru_r01, fhir.render_bundle], ids=["hl7v2", "fhir"])
@pytest.mark.parametrize(("field_name", "overrides"), UNMAPPABLE, ids=[u[0] for u in UNMAPPABLE])
def test_unmappable_values_are_rejected_naming_the_field(render: Any, field_name: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(UnmappableValue) as raised:
        render(sample_payload(**overrides))
    assert raised.value.field == field_name


def test_message_id_must_fit_msh_10() -> None:
    with pytest.raises(UnmappableValue) as raised:
        hl7v2.render_oru_r01(sample_payload(message_id="x" * 21))
    assert raised.value.field == "message_id"


def test_every_accepted_country_has_an_alpha3_code() -> None:
    assert set(country_codes()) <= set(hl7v2.COUNTRY_ALPHA3)
    alpha3 = list(hl7v2.COUNTRY_ALPHA3.values())
    assert len(set(alpha3)) == len(alpha3) and all(re.fullmatch("[A-Z]{3}", code) for code in alpha3)
    assert (hl7v2.country_alpha3("FR"), hl7v2.country_alpha3("DE"), hl7v2.country_alpha3("")) == ("FRA", "DEU", "")


# --- batches ---------------------------------------------------------------------------------------


def test_batch_wraps_the_messages_and_counts_them() -> None:
    payloads = [sample_payload(), sample_payload(patient=None), sample_payload(status="corrected")]
    text = hl7v2.render_batch(payloads, batch_id="batch-0001", created_at=datetime(2024, 3, 2, 8, 0, tzinfo=UTC), file_id="file-0001")

    names = [s[:3] for s in text.split("\r")]
    assert names[:2] == ["FHS", "BHS"] and names[-2:] == ["BTS", "FTS"] and names.count("MSH") == 3
    for header in (segments(text, "FHS")[0], segments(text, "BHS")[0]):
        assert field(header, 2) == "^~\\&" and field(header, 3) == f"RELAIS^{namespace('application').oid}^ISO"
        assert field(header, 7) == "20240302080000+0000" and field(header, 4) == field(segments(text, "MSH")[0], 4)
    assert (field(segments(text, "FHS")[0], 11), field(segments(text, "BHS")[0], 11)) == ("file-0001", "batch-0001")
    assert segments(text, "BTS") == ["BTS|3"] and segments(text, "FTS") == ["FTS|1"]
    # hl7apy parses BTS/FTS; it cannot parse FHS/BHS (it only knows MSH's separator field), checked above by hand.
    for name in ("BTS", "FTS"):
        assert parse_segment(segments(text, name)[0], version="2.5.1", validation_level=VALIDATION_LEVEL.STRICT).validate()

    messages = hl7v2.split_batch(text)
    assert messages == [hl7v2.render_oru_r01(p) for p in payloads]
    for message in messages:
        strict(message)
    again = hl7v2.render_batch_text(messages, batch_id="batch-0001", created_at=datetime(2024, 3, 2, 8, 0, tzinfo=UTC), file_id="file-0001")
    assert again == text
    with pytest.raises(ValueError, match="single messages"):
        hl7v2.render_batch_text([text], batch_id="b2", created_at=datetime(2024, 3, 2, tzinfo=UTC))


def test_empty_batch_and_stray_segments() -> None:
    text = hl7v2.render_batch([], batch_id="b0", created_at=datetime(2024, 3, 2, tzinfo=UTC))
    assert hl7v2.split_batch(text) == [] and "BTS|0" in text
    with pytest.raises(ValueError, match="outside a message"):
        hl7v2.split_batch("PID|1\rMSH|^~\\&|X")


# --- acknowledgements ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["AA", "AE", "AR", "CA", "CE", "CR"])
def test_ack_round_trip(code: str) -> None:
    payload = sample_payload()
    ack_text = hl7v2.build_ack(hl7v2.render_oru_r01(payload), code, "Refus | champ ^ invalide" if code not in {"AA", "CA"} else "")
    strict(ack_text)

    ack = hl7v2.parse_ack(ack_text)
    assert (ack.code, ack.control_id) == (code, payload.message_id)
    assert ack.accepted is (code in {"AA", "CA"})
    assert ack.text == ("" if code in {"AA", "CA"} else "Refus | champ ^ invalide")


def test_parse_ack_from_another_sender() -> None:
    reply = (
        "MSH|^~\\&|SIDEP|SIDEP|RELAIS|750000010|20240301102031+0100||ACK^R01^ACK|SIDEP-1|P|2.5.1\r\n"
        "MSA|AE|abc123\r\n"
        "ERR||PID^1^7|102^Data type error^HL70357|E||||Date de naissance \\T\\ sexe incoh\\X c3a9\\rents\n"
    )
    assert hl7v2.parse_ack(reply) == Ack(code="AE", control_id="abc123", text="Date de naissance & sexe incoh\\X c3a9\\rents")
    assert hl7v2.parse_ack("MSH|^~\\&|S\rMSA|AR|abc\rERR|||207^Application internal error^HL70357|E") == Ack(
        "AR", "abc", "Application internal error"
    )
    assert hl7v2.parse_ack("MSH|^~\\&|S\rMSA|AA|abc|OK\\X41\\") == Ack("AA", "abc", "OKA")


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   \r\n",
        "garbage",
        "MSH",
        "MSH|",
        "MSH|^~\\&|SIDEP|SIDEP|RELAIS||20240301||ACK|1|P|2.5.1",  # no MSA
        "MSH|^~\\&|S\rMSA|ZZ|abc",  # unknown code
        "MSH|^~\\&|S\rMSA|AA",  # no control id
        "MSH|^~\\&|S\rMSA|AA|a\rMSA|AA|b",  # two MSA
        "MSA|AA|abc",  # no MSH
        "MSH|^^\\&|S\rMSA|AA|abc",  # duplicate encoding characters
        "MSH1^~\\&|S\rMSA|AA|abc",  # alphanumeric field separator
        "FHS|^~\\&\rMSH|^~\\&|S\rMSA|AA|a\rBTS|1",  # a batch
        "MSH|^~\\&|S\rMSA|AA|a\rMSH|^~\\&|S\rMSA|AA|b",  # two messages
    ],
)
def test_malformed_acks(reply: str) -> None:
    with pytest.raises(MalformedAck):
        hl7v2.parse_ack(reply)


ack_like = st.one_of(
    st.text(),
    st.builds(lambda tail: "MSH|^~\\&|" + tail, st.text()),
    st.builds(lambda sep, tail: f"MSH{sep}" + tail, st.characters(), st.text()),
    st.builds(
        lambda code, rest: f"MSH|^~\\&|S|F|R|F|20240301||ACK|1|P|2.5.1\rMSA|{code}|{rest}",
        st.sampled_from(["AA", "AE", "AR", "XX", ""]),
        st.text(alphabet=st.sampled_from(list("ab|^~\\&\r\nXMSAERR0123")), max_size=40),
    ),
)


@settings(max_examples=300, deadline=None)
@given(ack_like)
def test_parse_ack_raises_only_malformed_ack(text: str) -> None:
    for parse in (hl7v2.parse_ack, hl7v2.parse_batch_acks):
        try:
            result = parse(text)
        except MalformedAck:
            continue
        for ack in result if isinstance(result, list) else [result]:
            assert ack.code in hl7v2.ACK_CODES and ack.control_id


def test_batch_acks() -> None:
    payloads = [sample_payload(), sample_payload(), sample_payload()]
    batch = hl7v2.render_batch(payloads, batch_id="b1", created_at=datetime(2024, 3, 2, tzinfo=UTC))
    reply = hl7v2.build_batch_ack(batch, codes={payloads[1].message_id: "AR"})

    acks = hl7v2.parse_batch_acks(reply)
    assert [(a.code, a.control_id) for a in acks] == [
        ("AA", payloads[0].message_id),
        ("AR", payloads[1].message_id),
        ("AA", payloads[2].message_id),
    ]
    assert field(segments(reply, "BHS")[0], 12) == "b1"
    lone = hl7v2.build_ack(hl7v2.render_oru_r01(payloads[0]), "AA")
    assert [a.control_id for a in hl7v2.parse_batch_acks(lone)] == [payloads[0].message_id]

    with pytest.raises(MalformedAck, match="BTS"):
        hl7v2.parse_batch_acks(reply.replace("BTS|3", "BTS|4"))
    for garbage in ["", "nonsense", "BTS|0\rFTS|1", "PID|1\rMSH|^~\\&|S\rMSA|AA|a"]:
        with pytest.raises(MalformedAck):
            hl7v2.parse_batch_acks(garbage)


# --- FHIR R4 ---------------------------------------------------------------------------------------


def test_bundle_is_a_valid_r4_transaction() -> None:
    payload = sample_payload(results=(sample_result(), sample_result(analyte="rsv", loinc_code="72885-7", result_snomed=RESULT_INVALID)))
    text = fhir.render_bundle(payload)

    bundle = Bundle.model_validate_json(text)
    assert bundle.type == "transaction" and bundle.identifier is not None
    assert (bundle.identifier.system, bundle.identifier.value) == (fhir.systems().message, payload.message_id)
    assert fhir.parse_bundle_message_id(text) == payload.message_id
    assert json.loads(text)["timestamp"] == "2024-03-01T10:20:30Z"
    kinds = [e["resource"]["resourceType"] for e in entries(text)]
    assert kinds == ["Organization", "Patient", "Device", "Specimen", "Observation", "Observation", "DiagnosticReport"]
    urls = {e["fullUrl"] for e in entries(text)}
    assert len(urls) == len(kinds) and all(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", u) for u in urls)
    for entry in entries(text):  # conditional updates (issue 16), the Device a conditional create
        kind = entry["resource"]["resourceType"]
        if kind == "Device":
            assert entry["request"]["method"] == "POST" and entry["request"]["ifNoneExist"].startswith("identifier=")
        else:
            assert entry["request"]["method"] == "PUT" and entry["request"]["url"].startswith(f"{kind}?identifier=")
    references = re.findall(r'"reference":\s*"([^"]+)"', text)
    assert references and set(references) <= urls
    assert fhir.render_bundle(payload) == text  # a retry renders the same bundle


def test_bundle_observations_and_report() -> None:
    payload = sample_payload(status="corrected", results=(sample_result(), sample_result(analyte="rsv", loinc_code="72885-7")))
    text = fhir.render_bundle(payload)
    observations = resources(text, "Observation")

    for observation in observations:
        assert {"system": fhir.systems().order, "value": str(payload.series_id)} in observation["identifier"]
        assert str(payload.screening_id) not in json.dumps(observation)  # stable across versions (issue 16)
        assert observation["status"] == "corrected"
        assert observation["effectiveDateTime"] == "2024-03-01T10:00:00+01:00"
        assert observation["valueCodeableConcept"]["coding"][0]["system"] == "http://snomed.info/sct"
        assert {"device", "specimen", "performer", "subject"} <= set(observation)
    assert [o["code"]["coding"][0]["code"] for o in observations] == ["94558-4", "72885-7"]
    assert {o["code"]["coding"][0]["system"] for o in observations} == {"http://loinc.org"}
    (organization,) = resources(text, "Organization")
    assert organization["identifier"] == [  # FR Core: idNatSt ("1" + FINESS) and FINEG (issue 16)
        {
            "use": "official",
            "type": {"coding": [{"system": fhir.FR_IDENTIFIER_TYPE_SYSTEM, "code": "IDNST"}]},
            "system": "urn:oid:1.2.250.1.71.4.2.2",
            "value": "1750000010",
        },
        {
            "type": {"coding": [{"system": fhir.FR_IDENTIFIER_TYPE_SYSTEM, "code": "FINEG"}]},
            "system": "https://finess.esante.gouv.fr",
            "value": "750000010",
        },
    ]
    (report,) = resources(text, "DiagnosticReport")
    assert report["status"] == "corrected" and len(report["result"]) == 2
    (specimen,) = resources(text, "Specimen")
    assert specimen["type"]["coding"][0]["code"] == "258500001"
    (device,) = resources(text, "Device")
    assert device["identifier"][0]["value"] == "1232" and device["manufacturer"] == "Abbott Rapid Diagnostics"


@pytest.mark.parametrize(("status", "expected"), [("final", "final"), ("corrected", "corrected"), ("removed", "entered-in-error")])
def test_bundle_status(status: str, expected: str) -> None:
    text = fhir.render_bundle(sample_payload(status=status))
    assert {r["status"] for r in resources(text, "Observation") + resources(text, "DiagnosticReport")} == {expected}


def test_fhir_patient_identified() -> None:
    (patient,) = resources(fhir.render_bundle(identified()), "Patient")
    assert patient["identifier"][1] == {
        "use": "official",
        "type": {"coding": [{"system": fhir.FR_IDENTIFIER_TYPE_SYSTEM, "code": "INS-NIR"}]},
        "system": "urn:oid:1.2.250.1.213.1.4.8",
        "value": "287112A04512345",
    }
    assert patient["name"] == [{"use": "official", "family": "VAUQUELIN-ZORN", "given": ["Anne-Sixtine"]}]
    assert (patient["gender"], patient["birthDate"]) == ("female", "1987-11-23")
    assert patient["address"] == [
        {"use": "home", "line": ["7 impasse des Lilas"], "city": "Villeurbanne", "postalCode": "69100", "country": "BE"}
    ]
    assert patient["telecom"] == [
        {"system": "phone", "value": "+32470123456", "use": "mobile"},
        {"system": "email", "value": "a.sixtine@example.net"},
    ]


def test_fhir_pseudonymous_only_the_pseudonym_leaves() -> None:
    identified_text = fhir.render_bundle(identified())
    without = fhir.render_bundle(sample_payload(patient=None))
    Bundle.model_validate_json(without)

    for value in [*IDENTITY_STRINGS, "1987-11-23", '"BE"', '"female"']:
        assert value in identified_text
        assert value not in without
    (patient,) = resources(without, "Patient")
    assert patient == {
        "resourceType": "Patient",
        "meta": {"profile": [fhir.PATIENT_PROFILE]},
        "identifier": [{"system": fhir.systems().pseudonym, "value": "5f1c0e2a9b7d4c3e8a6f0b1d2c3e4f5a"}],
    }


@FAST
@given(last=hostile_text, street=hostile_text)
def test_fhir_hostile_text(last: str, street: str) -> None:
    text = fhir.render_bundle(sample_payload(patient=sample_patient(last_name=last, address_line=street)))
    Bundle.model_validate_json(text)
    (patient,) = resources(text, "Patient")
    assert patient["name"][0].get("family") == (SPACES.sub(" ", BREAKS.sub(" ", last)).strip() or None)
    assert patient["address"][0].get("line", [None])[0] == (SPACES.sub(" ", BREAKS.sub(" ", street)).strip() or None)


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"resourceType": "Patient"}', '{"resourceType": "Bundle"}', '{"resourceType": "Bundle", "identifier": {"value": 3}}'],
)
def test_parse_bundle_message_id_rejects_other_documents(text: str) -> None:
    with pytest.raises(ValueError):
        fhir.parse_bundle_message_id(text)
