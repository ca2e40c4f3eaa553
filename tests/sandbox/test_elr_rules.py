"""The sandbox's ELR 2.5.1 rules (sandbox.elr.RULES), one mutation per rule: a conforming message rendered by Relais's
own renderer, one field broken, answered AE with an ERR segment and an MSA-3 naming the field, nothing stored; in
process (hl7apy and fast validation), over MLLP and inside a batch. Relais's output passes every rule."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relais.transfer.formats import hl7v2
from relais.transfer.payload import TransferPayload
from sandbox import elr
from sandbox import hl7 as sandbox_hl7
from tests.sandbox.test_sandbox import ROOT, Running, segments, start_sandbox, stop_sandbox
from tests.transfer.payload_factory import sample_payload, sample_result

CREATED = datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)


def _payload(**overrides: object) -> TransferPayload:
    values: dict[str, object] = {
        "recorder_rpps": "10101010101",
        "recorder_family": "MARTIN",
        "recorder_given": "Paul",
        "pharmacy_phone": "+33142000000",
        "kit_lot": "L1",
        "results": (sample_result(), sample_result(analyte="rsv", loinc_code="72885-7")),
    }
    values.update(overrides)
    return sample_payload(**values)


def conforming(**overrides: object) -> str:
    """A message Relais renders: identified, with an ordering provider (ORC-12/OBR-16), two results, a kit lot."""
    return hl7v2.render_oru_r01(_payload(**overrides))


# -- mutations: (segment, occurrence) field edits on the ER7 text ----------------------------------------------------


def _edit(text: str, name: str, number: int, change: Callable[[str], str], occurrence: int = 1) -> str:
    out, seen = [], 0
    for segment in text.split("\r"):
        if segment[:3] == name:
            seen += 1
            if seen == occurrence:
                fields = segment.split("|")
                index = number - 1 if name == "MSH" else number  # MSH-1 is the separator itself
                fields += [""] * (index + 1 - len(fields))
                fields[index] = change(fields[index])
                segment = "|".join(fields).rstrip("|")
        out.append(segment)
    return "\r".join(out)


def set_field(name: str, number: int, value: str, occurrence: int = 1) -> Callable[[str], str]:
    return lambda text: _edit(text, name, number, lambda _: value, occurrence)


def set_component(name: str, number: int, component: int, value: str, separator: str = "^") -> Callable[[str], str]:
    def change(field: str) -> str:
        parts = field.split(separator)
        parts += [""] * (component - len(parts))
        parts[component - 1] = value
        return separator.join(parts)

    return lambda text: _edit(text, name, number, change)


def replace(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)

    return mutate


def drop_segment(name: str) -> Callable[[str], str]:
    return lambda text: "\r".join(segment for segment in text.split("\r") if segment[:3] != name)


def orc3_and_obr3(value: str) -> Callable[[str], str]:
    return lambda text: set_field("OBR", 3, value)(set_field("ORC", 3, value)(text))


# rule field -> [(mutation id, mutation, MSA-3 prefix, ERR-2 location)]; every rule of sandbox.elr.RULES has one at least.
MUTATIONS: dict[str, list[tuple[str, Callable[[str], str], str, str]]] = {
    "MSH-21": [
        ("absent", set_field("MSH", 21, ""), "MSH-21: the ELR 2.5.1 profile id", "MSH^1^21"),
        ("other-profile", set_field("MSH", 21, "LAB-28^IHE"), "MSH-21: must be the ELR 2.5.1 profile", "MSH^1^21"),
    ],
    "MSH-3": [("no-oid", set_field("MSH", 3, "RELAIS"), "MSH-3: sending application HD needs an OID", "MSH^1^3")],
    "MSH-4": [
        ("no-oid", set_field("MSH", 4, "750000010"), "MSH-4: sending facility HD needs an OID", "MSH^1^4"),
        ("not-iso", set_component("MSH", 4, 3, "L"), "MSH-4: sending facility HD-3 must be ISO", "MSH^1^4"),
    ],
    "MSH-5": [("bad-oid", set_field("MSH", 5, "SIDEP^SIDEP^ISO"), "MSH-5: receiving application HD-2 'SIDEP' is not an OID", "MSH^1^5")],
    "MSH-6": [("no-namespace", set_field("MSH", 6, ""), "MSH-6: receiving facility needs a namespace", "MSH^1^6^1^1")],
    "SFT": [
        ("absent", drop_segment("SFT"), "SFT: the software segment must follow MSH", "SFT"),
    ],
    "PID-3": [
        ("nir-no-oid", replace("^INS-NIR&1.2.250.1.213.1.4.8&ISO^NH", "^INS-NIR^NH"), "PID-3: identifier #2: assigning", "PID^1^3^2^4"),
        ("no-type", replace("&ISO^PI~", "&ISO~"), "PID-3: identifier #1 needs an identifier type code (CX-5)", "PID^1^3^1^5"),
    ],
    "ORC-2": [
        ("no-oid", set_field("ORC", 2, "x^RELAIS"), "ORC-2: placer order number needs an assigning authority OID", "ORC^1^2^1"),
        ("no-orc", drop_segment("ORC"), "ORC: each OBR needs its common order segment", "ORC"),
    ],
    "ORC-3": [("bad-oid", set_component("ORC", 3, 3, "1.2.x"), "ORC-3: filler order number: EI-3 '1.2.x' is not an OID", "ORC^1^3^1")],
    "OBR-2": [("no-namespace", set_component("OBR", 2, 2, ""), "OBR-2: placer order number needs a namespace (EI-2)", "OBR^1^2^1")],
    "OBR-3": [
        (
            "no-oid",
            set_field("OBR", 3, "0cdb38d4-1800-48d2-ba8c-192c9a649238^RELAIS"),
            "OBR-3: filler order number needs an assigning authority OID (EI-3) and ISO (EI-4)",
            "OBR^1^3^1",
        ),
        ("both-no-oid", orc3_and_obr3("x^RELAIS"), "ORC-3: filler order number needs an assigning authority OID", "ORC^1^3^1"),
    ],
    "OBR-3 = ORC-3": [
        ("other-test", set_component("OBR", 3, 1, str(uuid.uuid4())), "OBR-3: filler order number differs from ORC-3", "OBR^1^3^1"),
        ("other-placer", set_component("OBR", 2, 1, str(uuid.uuid4())), "OBR-2: placer order number differs from ORC-2", "OBR^1^2^1"),
    ],
    "OBX-11": [("mixed", set_field("OBX", 11, "C", occurrence=2), "OBX-11: C here, F in an earlier OBX", "OBX^2^11^1")],
    "OBR-25": [
        ("corrected-final", set_field("OBR", 25, "C"), "OBR-25: C does not match OBX-11 F", "OBR^1^25^1"),
        ("pending", set_field("OBR", 25, "P"), "OBR-25: result status must be F or C", "OBR^1^25^1"),
    ],
    "SPM-2": [
        ("absent", set_field("SPM", 2, ""), "SPM-2: the specimen id is missing", "SPM^1^2^1"),
        ("no-oid", set_field("SPM", 2, "x&RELAIS"), "SPM-2: specimen placer id needs an assigning authority OID", "SPM^1^2^1^1"),
        ("filler-no-oid", set_component("SPM", 2, 2, "x&RELAIS&&ISO"), "SPM-2: specimen filler id: EI-3 '' is not an OID", "SPM^1^2^1^2"),
        ("no-filler", set_component("SPM", 2, 2, ""), "SPM-2: the specimen filler id (EIP-2) is missing", "SPM^1^2^1^2"),
    ],
    "ORC-12": [("no-authority", set_component("ORC", 12, 9, ""), "ORC-12: ordering provider assigning authority", "ORC^1^12^1^9")],
    "OBR-16": [("no-type", set_component("OBR", 16, 13, ""), "OBR-16: ordering provider needs an identifier type code", "OBR^1^16^1^13")],
    "OBX-18": [("no-oid", set_field("OBX", 18, "1232/L1^RELAIS"), "OBX-18: equipment instance id needs an assigning", "OBX^1^18^1")],
}  # fmt: skip

CASES = [(rule, name, mutate, prefix, location) for rule, cases in MUTATIONS.items() for name, mutate, prefix, location in cases]
CASE_IDS = [f"{rule}-{name}" for rule, name, *_ in CASES]


def test_every_rule_has_a_mutation_test() -> None:
    assert [rule.field for rule in elr.RULES] == list(MUTATIONS)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"patient": None},
        {"status": "corrected"},
        {"status": "removed", "patient": None},
        {"recorder_rpps": "", "recorder_id": "42"},  # the staff-account XCN
        {"recorder_rpps": "", "recorder_family": "", "recorder_given": ""},  # no ordering provider: ORC-12/OBR-16 absent
        {"results": (sample_result(),), "kit_lot": "", "pharmacy_phone": ""},
        {"symptoms": "yes", "symptom_onset": datetime(2024, 2, 27).date(), "kit_expiry": datetime(2025, 6, 30).date()},
    ],
    ids=["identified", "anonymous", "corrected", "removed", "staff-id", "no-provider", "minimal", "aoe"],
)
@pytest.mark.parametrize("full", [True, False], ids=["hl7apy", "fast"])
def test_relais_output_follows_every_rule(overrides: dict[str, object], full: bool) -> None:
    text = conforming(**overrides)
    assert elr.elr_problem(text.split("\r")) is None
    checked = sandbox_hl7.check_message(text, full=full)
    assert checked.problem is None, checked.problem


@pytest.mark.parametrize("receiver", ["SIDEP", "SIDEP^1.2.250.1.213.1.6.1.1^ISO"])
def test_a_receiver_is_a_namespace_or_a_full_hd(receiver: str) -> None:
    text = set_field("MSH", 6, receiver)(set_field("MSH", 5, receiver)(conforming()))
    assert sandbox_hl7.check_message(text, full=True).problem is None


@pytest.mark.parametrize("pharmacies", [1, 2], ids=["one-pharmacy", "two-pharmacies"])
def test_relais_batches_follow_the_envelope_rules(pharmacies: int) -> None:
    other = {"pharmacy_id": str(uuid.uuid4()), "pharmacy_finess": "750000028"} if pharmacies == 2 else {}
    batch = hl7v2.render_batch([_payload(), _payload(**other)], batch_id="BATCH1", created_at=CREATED)
    file = sandbox_hl7.split_batch(batch)
    assert file.problem == ""
    assert len({message.split("|")[3] for message in file.messages}) == pharmacies  # MSH-4 (FHS-4 follows it, or not)


@pytest.mark.parametrize(("rule", "name", "mutate", "prefix", "location"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("full", [True, False], ids=["hl7apy", "fast"])
def test_each_rule_refuses_its_mutation(rule: str, name: str, mutate: Callable[[str], str], prefix: str, location: str, full: bool) -> None:
    original = conforming()
    mutated = mutate(original)
    assert mutated != original
    checked = sandbox_hl7.check_message(mutated, full=full)
    assert checked.problem is not None
    assert checked.problem.reason.startswith(prefix), checked.problem.reason
    assert checked.problem.location == location


# -- through the running sandbox: MLLP, and a batch ------------------------------------------------------------------


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    certs = tmp_path_factory.mktemp("certs") / "dev"
    subprocess.run([sys.executable, "-m", "sandbox.devcerts", str(certs)], cwd=ROOT, check=True, capture_output=True)
    sandbox = start_sandbox(tmp_path_factory.mktemp("sandbox"), Path(certs))
    yield sandbox
    if sandbox.process.poll() is None:
        stop_sandbox(sandbox)


@pytest.fixture
def sandbox(running: Running) -> Running:
    running.set_mode("normal")
    assert running.control("POST", "/control/reset")[0] == 200
    return running


def _assert_refused(ack: str, field_prefix: str, location: str) -> None:
    seg = segments(ack)
    assert seg["MSA"][1] == "AE", ack
    field = field_prefix.split(":")[0]
    assert sandbox_hl7.unescape(seg["MSA"][3]).startswith(f"{field}: "), ack  # MSA-3 (80 characters) names the field
    assert "ERR" in seg and seg["ERR"][2] == location, ack
    assert sandbox_hl7.unescape(seg["ERR"][8]).startswith(field_prefix), ack  # ERR-8: the whole reason


@pytest.mark.parametrize(("rule", "name", "mutate", "prefix", "location"), CASES, ids=CASE_IDS)
def test_each_rule_over_mllp(sandbox: Running, rule: str, name: str, mutate: Callable[[str], str], prefix: str, location: str) -> None:
    _assert_refused(sandbox.mllp(mutate(conforming())), prefix, location)
    assert sandbox.messages() == []
    assert sandbox.control("GET", "/control/records?format=hl7v2")[1] == []
    assert sandbox.stats()["rejected"] == 1


@pytest.mark.parametrize(("rule", "name", "mutate", "prefix", "location"), CASES, ids=CASE_IDS)
def test_each_rule_in_a_batch(sandbox: Running, rule: str, name: str, mutate: Callable[[str], str], prefix: str, location: str) -> None:
    good, bad = conforming(), conforming()
    batch = hl7v2.render_batch_text([good, bad], batch_id="BATCH1", created_at=CREATED)
    batch = batch.replace(bad, mutate(bad))  # the envelope stays the one Relais built for conforming messages
    acks = [message for message in sandbox.mllp(batch).strip("\r").split("\rMSH|")[1:]]
    assert len(acks) == 2
    assert segments("MSH|" + acks[0])["MSA"][1] == "AA"
    _assert_refused("MSH|" + acks[1].split("\rBTS|")[0], prefix, location)
    stored = sandbox.messages()
    assert [row["message_id"] for row in stored] == [sandbox_hl7.message_id_of(good)]


def test_a_conforming_message_is_accepted_over_mllp(sandbox: Running) -> None:
    text = conforming()
    assert segments(sandbox.mllp(text))["MSA"][1] == "AA"
    assert [row["message_id"] for row in sandbox.messages()] == [sandbox_hl7.message_id_of(text)]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda batch: batch.replace(batch.split("\r")[0].split("|")[3], "750000010", 2), "FHS-4: sending facility HD needs an OID"),
        (lambda batch: batch.replace("|BATCH1", "|" + batch.split("\r")[0].split("|")[10]), "BHS-11: "),
        (lambda batch: batch.replace("|RELAIS^", "|RELAIS^x", 1), "FHS-3: sending application HD-2"),
    ],
    ids=["fhs4-no-oid", "bhs11-reused", "fhs3-bad-oid"],
)
def test_batch_envelope_rules(sandbox: Running, mutate: Callable[[str], str], fragment: str) -> None:
    batch = hl7v2.render_batch_text([conforming()], batch_id="BATCH1", created_at=CREATED)
    mutated = mutate(batch)
    assert mutated != batch
    reply = sandbox.mllp(mutated)
    ack = segments(reply)
    assert ack["MSA"][1] == "AE", reply
    assert fragment in ack["ERR"][8], reply
    assert sandbox.messages() == []


def test_the_rules_are_listed_by_the_control_api(sandbox: Running) -> None:
    status, rules = sandbox.control("GET", "/control/rules")
    assert status == 200
    assert [rule["field"] for rule in rules["hl7v2"]] == list(MUTATIONS)
    assert all(rule["requirement"] for rule in rules["hl7v2"] + rules["batch"])
    assert [rule["field"] for rule in rules["batch"]] == [rule.field for rule in elr.BATCH_RULES]


@pytest.mark.parametrize("number", [1, 2, 3, 4])
@pytest.mark.parametrize("full", [True, False], ids=["hl7apy", "fast"])
def test_sft_fields_are_required_on_both_paths(number: int, full: bool) -> None:
    checked = sandbox_hl7.check_message(set_field("SFT", number, "")(conforming()), full=full)
    assert checked.problem is not None and f"required field SFT-{number} is missing" in checked.problem.reason
    assert checked.problem.location.startswith(f"SFT^1^{number}")
