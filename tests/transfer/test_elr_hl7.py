"""The HL7 v2.5.1 ELR rules of issue 16, checked with a second, independent parser (python-hl7, not hl7apy and not
Relais's own reader) on every message shape Relais writes: new, corrected, removed, with and without identity, with
the ask-at-order-entry and kit observations, with and without the pharmacist's RPPS, and batches.

``elr_problems`` reads a message field by field and lists every rule it breaks; each rule has a name (the ELR_RULES
keys, listed in docs/integrators.md). The mutation tests blank each checked field of a valid message and require the
rule to fail: a field that goes missing from the renderer fails these tests."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import hl7
import pytest
from django.core.exceptions import ImproperlyConfigured

from relais.transfer.destinations import destination
from relais.transfer.formats import hl7v2
from relais.transfer.hd import parse_hd
from relais.transfer.identifiers import FINESS_OID, INS_NIR_OID, RPPS_OID, namespace
from relais.transfer.payload import TransferPayload
from tests.transfer.payload_factory import SAMPLED_AT, sample_patient, sample_payload

RPPS = "10001234567"
PHARMACY_PHONE = "+33142345678"
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
        "MSH-4 sending facility HD (FINESS, the pharmacy's own OID)": lambda m: (
            [get(m, f"MSH.F4.R1.C{n}") for n in (1, 2, 3)] == [payload.pharmacy_finess, facility_oid(payload), "ISO"]
        ),
        "MSH-5 receiving application": lambda m: bool(get(m, "MSH.F5.R1.C1")),
        "MSH-6 receiving facility": lambda m: bool(get(m, "MSH.F6.R1.C1")),
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
        # Absent when the pharmacy has no phone: a receiver never gets an empty or invented number.
        "ORC-23 ordering facility phone (structured XTN, WPN, PH)": lambda m: (
            (
                [get(m, f"ORC.F23.R1.C{c}") for c in (2, 3)] == ["WPN", "PH"]
                and all(DIGITS.fullmatch(get(m, f"ORC.F23.R1.C{c}")) for c in (5, 6, 7))
                and "+" + "".join(get(m, f"ORC.F23.R1.C{c}") for c in (5, 6, 7)) == payload.pharmacy_phone
                and get(m, "ORC.F23.R1.C12") == payload.pharmacy_phone
            )
            if payload.pharmacy_phone
            else all(get(m, f"ORC.F23.R1.C{c}") == "" for c in range(1, 13))  # XTN-1 is empty: F23 alone reads ""
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


def facility_oid(payload: TransferPayload) -> str:
    """The pharmacy's OID in MSH-4: 2.25 + its UUID as an integer (ITU-T X.667), never the FINESS registry's OID."""
    oid = f"2.25.{uuid.UUID(payload.pharmacy_id).int}"
    assert OID.fullmatch(oid) and oid != FINESS_OID
    return oid


def elr_problems(text: str, payload: TransferPayload) -> list[str]:
    message = hl7.parse(text)
    assert [str(s[0]) for s in message] == hl7v2.segment_order(hl7v2.observation_count(payload))
    return [name for name, check in _rules(payload).items() if not check(message)]


def _shapes() -> dict[str, TransferPayload]:
    identified = sample_patient()
    aoe = {"symptoms": "yes", "symptom_onset": date(2024, 2, 28), "kit_lot": "AB12", "kit_expiry": date(2025, 6, 30)}
    return {
        "new-identified": sample_payload(pharmacy_phone=PHARMACY_PHONE, **RECORDER),
        "new-without-identity": sample_payload(patient=None, **RECORDER),
        "corrected": sample_payload(status="corrected", version=2, **RECORDER),
        "removed": sample_payload(status="removed", version=3, **RECORDER),
        "removed-without-identity": sample_payload(status="removed", patient=None, **RECORDER),
        "aoe-and-kit": sample_payload(**aoe, **RECORDER),
        "no-rpps": sample_payload(**{**RECORDER, "recorder_rpps": ""}),
        "landline-no-nir": sample_payload(patient=sample_patient(phone="+33142345678", nir=""), **RECORDER),
        "identity": sample_payload(patient=identified, **RECORDER),
        "pharmacy-without-phone": sample_payload(pharmacy_phone="", **RECORDER),
        "pharmacy-foreign-phone": sample_payload(pharmacy_phone="+32470123456", **RECORDER),
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
    ("MSH", 3), ("MSH", 4), ("MSH", 5), ("MSH", 6), ("MSH", 10), ("MSH", 21), ("SFT", 1), ("SFT", 2), ("SFT", 3), ("SFT", 4),
    ("PID", 3), ("PID", 13), ("ORC", 2), ("ORC", 3), ("ORC", 12), ("ORC", 21), ("ORC", 22), ("ORC", 23), ("OBR", 2), ("OBR", 3),
    ("OBR", 16), ("OBR", 25), ("OBX", 11), ("OBX", 18), ("SPM", 2), ("SPM", 17), ("SPM", 18),
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
    # One pharmacy: the batch's sending facility is its MSH-4 (FINESS, the pharmacy's own OID)
    assert [get(fhs, f"MSH.F4.R1.C{n}") for n in (1, 2, 3)] == ["750000010", facility_oid(payloads[0]), "ISO"]
    assert [str(bhs[4][0][n]) for n in (0, 1, 2)] == ["750000010", facility_oid(payloads[0]), "ISO"]
    assert [get(fhs, "MSH.F5"), get(fhs, "MSH.F6"), str(bhs[5]), str(bhs[6])] == ["SIDEP"] * 4
    file_id, batch_id = get(fhs, "MSH.F11"), str(bhs[11])
    assert batch_id == "BATCH000000000000001" and file_id and file_id != batch_id
    assert len(batch) == 3
    for message, payload in zip(batch, payloads, strict=True):
        assert elr_problems(str(message), payload) == []
    assert str(batch.trailer[1]) == "3"


def test_a_batch_of_several_pharmacies_is_sent_by_the_relais_service() -> None:
    other = sample_payload(pharmacy_finess="690000011", pharmacy_id=str(uuid.uuid4()), **RECORDER)
    payloads = [SHAPES["new-identified"], other]
    text = hl7v2.render_batch(payloads, batch_id="B2", created_at=datetime(2024, 3, 2, tzinfo=UTC))
    fhs, bhs = text.split("\r")[:2]
    application = f"RELAIS^{namespace('application').oid}^ISO"
    assert fhs.split("|")[3] == application and bhs.split("|")[3] == application
    # each message keeps its own pharmacy as MSH-4
    msh4 = [line.split("|")[3] for line in text.split("\r") if line.startswith("MSH")]
    assert msh4 == [f"{p.pharmacy_finess}^{facility_oid(p)}^ISO" for p in payloads]
    assert facility_oid(payloads[0]) != facility_oid(other)


def test_two_pharmacies_sharing_nothing_but_the_finess_registry_get_two_facility_oids() -> None:
    """MSH-4's universal id names the pharmacy, not the FINESS registry (the same for every pharmacy)."""
    texts = [hl7v2.render_oru_r01(sample_payload(pharmacy_id=str(uuid.uuid4()), **RECORDER)) for _ in range(2)]
    oids = [get(hl7.parse(t), "MSH.F4.R1.C2") for t in texts]
    assert len(set(oids)) == 2 and FINESS_OID not in oids and all(OID.fullmatch(o) for o in oids)


def test_the_finess_registry_oid_in_msh4_breaks_its_rule() -> None:
    payload = SHAPES["new-identified"]
    text = hl7v2.render_oru_r01(payload).replace(facility_oid(payload), FINESS_OID, 1)
    assert [p for p in elr_problems(text, payload) if p.startswith("MSH-4")]


@pytest.mark.parametrize("pharmacy_id", ["", "not-a-uuid"])
def test_a_payload_without_a_pharmacy_id_is_refused_not_sent(pharmacy_id: str) -> None:
    with pytest.raises(hl7v2.UnmappableValue, match="pharmacy_id"):
        hl7v2.render_oru_r01(sample_payload(pharmacy_id=pharmacy_id, **RECORDER))


def test_the_pharmacy_phone_is_orc23_and_only_when_it_has_one() -> None:
    with_phone = hl7.parse(hl7v2.render_oru_r01(SHAPES["new-identified"]))
    assert [get(with_phone, f"ORC.F23.R1.C{c}") for c in (2, 3, 5, 6, 7, 12)] == ["WPN", "PH", "33", "1", "42345678", PHARMACY_PHONE]
    without = hl7v2.render_oru_r01(SHAPES["pharmacy-without-phone"])
    assert get(hl7.parse(without), "ORC.F23.R1.C2") == "" and next(s for s in without.split("\r") if s.startswith("ORC")).count("|") == 22
    # a number where there is none breaks the rule too
    invented = without.replace("\rOBR|", "|^WPN^PH^^33^1^42345678\rOBR|", 1)
    assert "ORC-23 ordering facility phone (structured XTN, WPN, PH)" in elr_problems(invented, SHAPES["pharmacy-without-phone"])


def test_a_mobile_pharmacy_phone_is_still_a_work_phone_on_a_telephone() -> None:
    message = hl7.parse(hl7v2.render_oru_r01(sample_payload(pharmacy_phone="+33612345678", **RECORDER)))
    assert [get(message, f"ORC.F23.R1.C{c}") for c in (2, 3, 5, 6, 7)] == ["WPN", "PH", "33", "6", "12345678"]
    assert get(message, "PID.F13.R1.C3") == "CP"  # the patient's own mobile keeps CP: the cache tells the two apart


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


# --- receivers (MSH-5/6, FHS/BHS-5/6) per destination ----------------------------------------------


def _with_receivers(settings: Any, **receiver: str) -> None:
    config = {**settings.RELAIS_TRANSFER, "destinations": dict(settings.RELAIS_TRANSFER["destinations"])}
    config["destinations"]["national"] = {"message_format": "hl7v2", "transport": "mllp", "port": 2575, **receiver}
    settings.RELAIS_TRANSFER = config


def test_each_destination_names_its_receiver_in_msh5_msh6_and_the_batch_headers(settings: Any) -> None:
    _with_receivers(settings, receiving_application="SIDEP-ELR^1.2.250.1.999.7.1^ISO", receiving_facility="ANS")
    payloads = [sample_payload(destination="national", **RECORDER) for _ in range(2)]
    message = hl7.parse(hl7v2.render_oru_r01(payloads[0]))
    assert [get(message, f"MSH.F5.R1.C{n}") for n in (1, 2, 3)] == ["SIDEP-ELR", "1.2.250.1.999.7.1", "ISO"]
    assert [get(message, f"MSH.F6.R1.C{n}") for n in (1, 2)] == ["ANS", ""]
    assert elr_problems(hl7v2.render_oru_r01(payloads[0]), payloads[0]) == []
    hl7v2.validate_message(hl7v2.render_oru_r01(payloads[0]))  # hl7apy STRICT takes the HD with its OID
    batch = hl7v2.render_batch(payloads, batch_id="B3", created_at=datetime(2024, 3, 2, tzinfo=UTC))
    for header in batch.split("\r")[:2]:
        assert header.split("|")[4:6] == ["SIDEP-ELR^1.2.250.1.999.7.1^ISO", "ANS"]
    # another destination, or one that sets nothing, keeps SIDEP
    plain = hl7.parse(hl7v2.render_oru_r01(sample_payload(destination="sandbox-mllp-hl7v2", **RECORDER)))
    assert [get(plain, "MSH.F5"), get(plain, "MSH.F6")] == ["SIDEP", "SIDEP"]
    # a destination built by hand (not in the settings) gets the defaults
    assert get(hl7.parse(hl7v2.render_oru_r01(sample_payload(destination="not-configured"))), "MSH.F5") == "SIDEP"


def test_empty_destination_is_the_destination_in_force(settings: Any) -> None:
    _with_receivers(settings, receiving_facility="ANS^1.2.250.1.999.7.2^ISO")
    settings.RELAIS_TRANSFER = {**settings.RELAIS_TRANSFER, "destination": "national"}
    assert get(hl7.parse(hl7v2.render_oru_r01(sample_payload(**RECORDER))), "MSH.F6.R1.C2") == "1.2.250.1.999.7.2"


def test_a_batch_mixing_receivers_is_refused() -> None:
    first = hl7v2.render_oru_r01(sample_payload(**RECORDER))
    other = first.replace("|SIDEP|SIDEP|", "|SIDEP|ANS|", 1)
    with pytest.raises(ValueError, match="one destination"):
        hl7v2.render_batch_text([first, other], batch_id="B4", created_at=datetime(2024, 3, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SIDEP", "SIDEP"),
        (" SI-DEP ", "SI-DEP"),
        ("SIDEP^1.2.250.1.999^ISO", "SIDEP^1.2.250.1.999^ISO"),
        ("A B^ 2.25.1 ^ISO", "A B^2.25.1^ISO"),
    ],
)
def test_receiver_hd_accepted_forms(value: str, expected: str) -> None:
    assert parse_hd(value, where="x") == expected


@pytest.mark.parametrize(
    "value",
    ["", "SI|DEP", "SI&DEP", "S~", "X" * 21, "SIDEP^1.2.x^ISO", "SIDEP^1.2.3", "SIDEP^1.2.3^DNS", "SIDEP^^ISO", "SIDEP^3.1^ISO",
     "SIDEP^1.02^ISO", "^1.2.3^ISO", 42, None],
)  # fmt: skip
def test_receiver_hd_refused_forms(value: object) -> None:
    with pytest.raises(ImproperlyConfigured, match="where-it-is"):
        parse_hd(value, where="where-it-is")


@pytest.mark.parametrize("key", ["receiving_application", "receiving_facility"])
def test_a_destination_with_a_malformed_receiver_refuses_to_start(settings: Any, key: str) -> None:
    _with_receivers(settings, **{key: "SIDEP^not-an-oid^ISO"})
    with pytest.raises(ImproperlyConfigured, match=f"destination national: {key}"):
        destination("national")
    settings.RELAIS_TRANSFER = {**settings.RELAIS_TRANSFER, "destinations": {"national": {"message_format": "hl7v2", "transport": "mllp"}}}
    assert (destination("national").receiving_application, destination("national").receiving_facility) == ("SIDEP", "SIDEP")


def test_settings_check_every_destination_when_they_load() -> None:
    """relais/settings.py runs receiving_hds over every destination: a malformed one stops the process at start-up."""
    import subprocess
    import sys

    code = (
        "import relais.transfer.hd as hd, django.core.exceptions as e\n"
        "original = hd.receiving_hds\n"
        "hd.receiving_hds = lambda config, where: original({**config, 'receiving_facility': 'SIDEP^x^ISO'}, where=where)\n"
        "try:\n    import relais.settings\nexcept e.ImproperlyConfigured as exc:\n    print('refused:', exc)\n"
    )
    env = {**os.environ, "RELAIS_ENV": "test"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False, timeout=60)
    assert "refused: RELAIS_TRANSFER destination" in out.stdout and "receiving_facility" in out.stdout, out.stderr[-2000:]
