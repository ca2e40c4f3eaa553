"""The HL7 v2.5.1 ELR rules of issue 16, checked with a second, independent parser (python-hl7, not hl7apy and not
Relais's own reader) on every message shape Relais writes: new, corrected, removed, with and without identity, with
the ask-at-order-entry and kit observations, with and without the pharmacist's RPPS, and batches.

``elr_problems`` reads a message field by field and lists every rule it breaks; each rule has a name (the ELR_RULES
keys, listed in docs/integrators.md). The mutation tests blank each checked field of a valid message and require the
rule to fail: a field that goes missing from the renderer fails these tests."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import hl7
import pytest

from relais.transfer.formats import hl7v2
from relais.transfer.identifiers import FINESS_OID, INS_NIR_OID, RPPS_OID, namespace
from relais.transfer.payload import TransferPayload
from tests.transfer.payload_factory import SAMPLED_AT, sample_patient, sample_payload

RPPS = "10001234567"
RECORDER = {"recorder_rpps": RPPS, "recorder_family": "MARTIN", "recorder_given": "Léa", "recorder_id": str(uuid.UUID(int=7))}
OID = re.compile(r"[012](\.(0|[1-9]\d*))+")
DIGITS = re.compile(r"\d+")
TS = re.compile(r"\d{14}[+-]\d{4}")


def get(message: Any, path: str) -> str:
    """python-hl7's accessor ("ORC.F12.R1.C9.S2"), "" when the field, component or subcomponent is absent."""
    try:
        return str(message[path])
    except (IndexError, KeyError):
        return ""


def _ei(message: Any, path: str, kind: str) -> bool:
    """An EI of Relais: a value, RELAIS, the OID of this kind of identifier, ISO."""
    authority = [get(message, f"{path}.C{n}") for n in (2, 3, 4)]
    return bool(get(message, f"{path}.C1")) and authority == ["RELAIS", namespace(kind).oid, "ISO"]


def _rules(payload: TransferPayload) -> dict[str, Callable[[Any], bool]]:
    series = str(payload.series_id)
    obx_status = {"final": "F", "corrected": "C", "removed": "D"}[payload.status]
    obr_status = {"final": "F", "corrected": "C", "removed": "C"}[payload.status]
    results = len(payload.results)

    def every_obx(check: Callable[[Any, int], bool], only_results: bool = False) -> Callable[[Any], bool]:
        def run(message: Any) -> bool:
            obx = message.segments("OBX")
            return bool(obx) and all(check(message, i + 1) for i in range(results if only_results else len(obx)))

        return run

    rules: dict[str, Callable[[Any], bool]] = {
        "MSH-3 sending application HD with OID": lambda m: (
            [get(m, f"MSH.F3.R1.C{n}") for n in (1, 2, 3)] == ["RELAIS", namespace("application").oid, "ISO"]
        ),
        "MSH-4 sending facility HD (FINESS, OID)": lambda m: (
            [get(m, f"MSH.F4.R1.C{n}") for n in (1, 2, 3)] == [payload.pharmacy_finess, FINESS_OID, "ISO"]
        ),
        "MSH-5/6 receiving application and facility": lambda m: bool(get(m, "MSH.F5.R1.C1") and get(m, "MSH.F6.R1.C1")),
        "MSH-10 message id": lambda m: get(m, "MSH.F10") == payload.message_id,
        "MSH-12 version 2.5.1": lambda m: get(m, "MSH.F12") == "2.5.1",
        "MSH-21 ELR profile": lambda m: (
            [get(m, f"MSH.F21.R1.C{n}") for n in (1, 3, 4)] == ["PHLabReport-NoAck", "2.16.840.1.113883.9.11", "ISO"]
        ),
        "SFT software (vendor, version, product, binary id)": lambda m: (
            all(get(m, f"SFT.F{n}.R1.C1") for n in (1, 2, 3, 4)) and OID.fullmatch(get(m, "SFT.F1.R1.C6.S2")) is not None
        ),
        "PID-3 pseudonym with assigning authority OID": lambda m: (
            [get(m, f"PID.F3.R1.C{c}") for c in (1, 5)] == [payload.patient_pseudonym, "PI"]
            and [get(m, f"PID.F3.R1.C4.S{s}") for s in (1, 2, 3)] == ["RELAIS", namespace("pseudonym").oid, "ISO"]
        ),
        "ORC-2 placer order number (series, OID)": lambda m: get(m, "ORC.F2.R1.C1") == series and _ei(m, "ORC.F2.R1", "order"),
        "ORC-3 filler order number (series, OID)": lambda m: get(m, "ORC.F3.R1.C1") == series and _ei(m, "ORC.F3.R1", "order"),
        "OBR-2 placer order number (series, OID)": lambda m: get(m, "OBR.F2.R1.C1") == series and _ei(m, "OBR.F2.R1", "order"),
        "OBR-3 filler order number (series, OID)": lambda m: get(m, "OBR.F3.R1.C1") == series and _ei(m, "OBR.F3.R1", "order"),
        "ORC-21 ordering facility name (FINESS)": lambda m: (
            bool(get(m, "ORC.F21.R1.C1"))
            and [get(m, "ORC.F21.R1.C6.S2"), get(m, "ORC.F21.R1.C10")] == [FINESS_OID, payload.pharmacy_finess]
        ),
        "ORC-22 ordering facility address": lambda m: (
            [get(m, f"ORC.F22.R1.C{n}") for n in (1, 3, 5)]
            == [payload.pharmacy_address_line, payload.pharmacy_city, payload.pharmacy_postcode]
        ),
        "OBR-4 universal service id (LOINC)": lambda m: get(m, "OBR.F4.R1.C3") == "LN",
        "OBR-25 result status": lambda m: get(m, "OBR.F25") == obr_status,
        "OBX-11 observation status on every OBX": every_obx(lambda m, i: get(m, f"OBX{i}.F11") == obx_status),
        "OBX-18 equipment instance (device, lot, OID)": every_obx(
            lambda m, i: (
                get(m, f"OBX{i}.F18.R1.C1") == payload.device_id + (f"/{payload.kit_lot}" if payload.kit_lot else "")
                and _ei(m, f"OBX{i}.F18.R1", "device")
            ),
            only_results=True,
        ),
        "SPM-2 specimen id (placer and filler parts, OID)": lambda m: all(
            [get(m, f"SPM.F2.R1.C{c}.S{s}") for s in (1, 2, 3, 4)] == [series, "RELAIS", namespace("specimen").oid, "ISO"] for c in (1, 2)
        ),
        "SPM-17 collection time": lambda m: TS.fullmatch(get(m, "SPM.F17.R1.C1")) is not None,
        "SPM-18 received time": lambda m: TS.fullmatch(get(m, "SPM.F18")) is not None,
    }
    if payload.recorder_rpps or payload.recorder_id:
        identifier, authority, oid, kind = (
            ("8" + payload.recorder_rpps, "RPPS", RPPS_OID, "RPPS")
            if payload.recorder_rpps
            else (payload.recorder_id, "RELAIS", namespace("staff").oid, "RI")
        )
        for field in ("ORC.F12", "OBR.F16"):
            rules[f"{field[:3]}-{field[5:]} ordering provider (XCN with {kind})"] = (
                lambda m, f=field, i=identifier, a=authority, o=oid, k=kind: (
                    [get(m, f"{f}.R1.C{c}") for c in (1, 2, 3, 13)] == [i, payload.recorder_family, payload.recorder_given, k]
                    and [get(m, f"{f}.R1.C9.S{s}") for s in (1, 2, 3)] == [a, o, "ISO"]
                )
            )
    if payload.patient is not None:
        if payload.patient.nir:
            rules["PID-3 INS-NIR with OID"] = lambda m: (
                [get(m, f"PID.F3.R2.C{c}") for c in (1, 5)] == [payload.patient.nir, "NH"]
                and [  # type: ignore[union-attr]
                    get(m, f"PID.F3.R2.C4.S{s}") for s in (1, 2, 3)
                ]
                == ["INS-NIR", INS_NIR_OID, "ISO"]
            )
        if payload.patient.phone:
            rules["PID-13 structured phone (XTN-2/3/5/6/7/12)"] = lambda m: (
                get(m, "PID.F13.R1.C2") == "PRN"
                and get(m, "PID.F13.R1.C3") in ("CP", "PH")
                and all(DIGITS.fullmatch(get(m, f"PID.F13.R1.C{c}")) for c in (5, 6, 7))
                and "+" + "".join(get(m, f"PID.F13.R1.C{c}") for c in (5, 6, 7)) == payload.patient.phone  # type: ignore[union-attr]
                and get(m, "PID.F13.R1.C12") == payload.patient.phone  # type: ignore[union-attr]
            )
    return rules


def elr_problems(text: str, payload: TransferPayload) -> list[str]:
    message = hl7.parse(text)
    assert [str(s[0]) for s in message] == hl7v2.segment_order(hl7v2.observation_count(payload))
    return [name for name, check in _rules(payload).items() if not check(message)]


def _shapes() -> dict[str, TransferPayload]:
    identified = sample_patient()
    aoe = {"symptoms": "yes", "symptom_onset": date(2024, 2, 28), "kit_lot": "AB12", "kit_expiry": date(2025, 6, 30)}
    return {
        "new-identified": sample_payload(**RECORDER),
        "new-without-identity": sample_payload(patient=None, **RECORDER),
        "corrected": sample_payload(status="corrected", version=2, **RECORDER),
        "removed": sample_payload(status="removed", version=3, **RECORDER),
        "removed-without-identity": sample_payload(status="removed", patient=None, **RECORDER),
        "aoe-and-kit": sample_payload(**aoe, **RECORDER),
        "no-rpps": sample_payload(**{**RECORDER, "recorder_rpps": ""}),
        "landline-no-nir": sample_payload(patient=sample_patient(phone="+33142345678", nir=""), **RECORDER),
        "identity": sample_payload(patient=identified, **RECORDER),
    }


SHAPES = _shapes()


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_message_shape_reads_with_python_hl7_and_follows_the_elr_rules(shape: str) -> None:
    payload = SHAPES[shape]
    text = hl7v2.render_oru_r01(payload)
    assert elr_problems(text, payload) == []
    hl7v2.validate_message(text)  # and hl7apy STRICT agrees


def test_versions_of_one_test_share_order_numbers_and_differ_in_message_id() -> None:
    series = uuid.uuid4()
    texts = [
        hl7v2.render_oru_r01(sample_payload(series_id=series, status=status, version=n, **RECORDER))
        for n, status in enumerate(("final", "corrected", "removed"), start=1)
    ]
    parsed = [hl7.parse(t) for t in texts]
    for path in ("ORC.F2", "ORC.F3", "OBR.F2", "OBR.F3", "SPM.F2"):
        assert len({get(m, path) for m in parsed}) == 1, path
    assert len({get(m, "MSH.F10") for m in parsed}) == 3
    assert [get(m, "OBX.F11") for m in parsed] == ["F", "C", "D"]
    payload = sample_payload(**RECORDER)
    assert hl7v2.render_oru_r01(payload) == hl7v2.render_oru_r01(payload)  # a retry sends the same bytes, the same MSH-10


def test_without_any_recorder_no_provider_is_invented() -> None:
    payload = sample_payload()  # the account is gone: no RPPS, no id, no name
    message = hl7.parse(hl7v2.render_oru_r01(payload))
    assert get(message, "ORC.F12") == "" and get(message, "OBR.F16") == ""
    assert elr_problems(hl7v2.render_oru_r01(payload), payload) == []


def test_a_malformed_rpps_is_refused_not_sent() -> None:
    with pytest.raises(hl7v2.UnmappableValue, match="recorder_rpps"):
        hl7v2.render_oru_r01(sample_payload(**{**RECORDER, "recorder_rpps": "1234"}))


def _blank(text: str, segment: str, field: int) -> str:
    """``text`` with field ``field`` of every ``segment`` emptied (MSH: MSH-n is index n-1 once split on "|")."""
    out = []
    for line in text.split("\r"):
        parts = line.split("|")
        index = field - 1 if segment == "MSH" else field
        if parts[0] == segment and index < len(parts):
            parts[index] = ""
        out.append("|".join(parts))
    return "\r".join(out)


MUTATIONS = [
    ("MSH", 3), ("MSH", 4), ("MSH", 5), ("MSH", 10), ("MSH", 21), ("SFT", 1), ("SFT", 2), ("SFT", 3), ("SFT", 4), ("PID", 3),
    ("PID", 13), ("ORC", 2), ("ORC", 3), ("ORC", 12), ("ORC", 21), ("ORC", 22), ("OBR", 2), ("OBR", 3), ("OBR", 16), ("OBR", 25),
    ("OBX", 11), ("OBX", 18), ("SPM", 2), ("SPM", 17), ("SPM", 18),
]  # fmt: skip


@pytest.mark.parametrize(("segment", "field"), MUTATIONS, ids=[f"{s}-{f}" for s, f in MUTATIONS])
def test_a_missing_field_breaks_its_elr_rule(segment: str, field: int) -> None:
    payload = SHAPES["new-identified"]
    text = _blank(hl7v2.render_oru_r01(payload), segment, field)
    problems = elr_problems(text, payload)
    expected = "SFT software" if segment == "SFT" else f"{segment}-{field}"
    assert any(problem.startswith(expected) for problem in problems), problems


# --- batches -----------------------------------------------------------------------------------------


def test_batch_headers_name_the_sender_with_distinct_file_and_batch_ids() -> None:
    payloads = [SHAPES["new-identified"], SHAPES["corrected"], SHAPES["new-without-identity"]]
    text = hl7v2.render_batch(payloads, batch_id="BATCH000000000000001", created_at=datetime(2024, 3, 2, tzinfo=UTC))
    lines = text.split("\r")
    assert (lines[0][:3], lines[-1]) == ("FHS", "FTS|1")
    batch = hl7.parse_batch("\r".join(lines[1:-1]))  # python-hl7 reads BHS..BTS batches
    fhs = hl7.parse(text.split("\r", 1)[0].replace("FHS", "MSH", 1))  # FHS has MSH's layout
    bhs = batch.header
    assert [get(fhs, f"MSH.F3.R1.C{n}") for n in (1, 2, 3)] == ["RELAIS", namespace("application").oid, "ISO"]
    assert [str(bhs[3][0][n]) for n in (0, 1, 2)] == ["RELAIS", namespace("application").oid, "ISO"]
    assert get(fhs, "MSH.F4.R1.C2") == FINESS_OID and str(bhs[4][0][1]) == FINESS_OID
    file_id, batch_id = get(fhs, "MSH.F11"), str(bhs[11])
    assert batch_id == "BATCH000000000000001" and file_id and file_id != batch_id
    assert len(batch) == 3
    for message, payload in zip(batch, payloads, strict=True):
        assert elr_problems(str(message), payload) == []
    assert str(batch.trailer[1]) == "3"


def test_a_batch_of_several_pharmacies_names_none() -> None:
    payloads = [SHAPES["new-identified"], sample_payload(pharmacy_finess="690000011", **RECORDER)]
    text = hl7v2.render_batch(payloads, batch_id="B2", created_at=datetime(2024, 3, 2, tzinfo=UTC))
    fhs, bhs = text.split("\r")[:2]
    assert fhs.split("|")[3] == "" and bhs.split("|")[3] == ""


def test_sampled_time_is_the_received_time() -> None:
    message = hl7.parse(hl7v2.render_oru_r01(SHAPES["new-identified"]))
    assert get(message, "SPM.F18") == get(message, "SPM.F17.R1.C1") == SAMPLED_AT.strftime("%Y%m%d%H%M%S+0100")


@pytest.mark.parametrize("phone", ["+33612345678", "+33712345678", "+33142345678", "+33512345678", "+32470123456", "+14155550123"])
def test_structured_phone_agrees_with_phonenumbers(phone: str) -> None:
    import phonenumbers

    number = phonenumbers.parse(phone, None)
    national = phonenumbers.national_significant_number(number)
    area = national[: phonenumbers.length_of_national_destination_code(number)]
    message = hl7.parse(hl7v2.render_oru_r01(sample_payload(patient=sample_patient(phone=phone), **RECORDER)))
    assert [get(message, f"PID.F13.R1.C{c}") for c in (5, 6, 7, 12)] == [str(number.country_code), area, national[len(area) :], phone]
