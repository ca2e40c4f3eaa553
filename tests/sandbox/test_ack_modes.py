"""The sandbox's acknowledgement modes (``--ack-mode``, ``ack_mode`` in POST /control/mode).

"application" (the default) answers AA/AE/AR whatever MSH-15/MSH-16 ask. "enhanced" follows HL7 v2.5.1 enhanced
acknowledgement: a message whose MSH-15 asks for an accept acknowledgement (AL; ER on error; SU on success, table
0155) gets CA (stored), CE (content refused: the ELR and platform rules, same ERR and MSA-3) or CR (MSH-9/11/12 not
accepted); a message in original mode (MSH-15 and MSH-16 empty) still gets AA/AE/AR. Driven over MLLP and HTTPS
against the sandbox process, as tests/sandbox/test_sandbox.py does.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from sandbox import hl7 as sandbox_hl7
from sandbox.modes import InvalidMode, Mode, parse_mode
from tests.sandbox import samples
from tests.sandbox.test_sandbox import ROOT, Running, mllp_exchange, segments, start_sandbox, stop_sandbox

HL7_TYPE = "x-application/hl7-v2+er7"


def with_ack_types(message: str, accept: str, application: str) -> str:
    """The sample (MSH-15 AL, MSH-16 NE) with other acknowledgement types."""
    assert "|AL|NE|FRA|" in message
    return message.replace("|AL|NE|FRA|", f"|{accept}|{application}|FRA|", 1)


def original(message: str) -> str:
    """The sample in original acknowledgement mode: MSH-15 and MSH-16 empty."""
    return with_ack_types(message, "", "")


def content_error(message_id: str) -> str:
    return samples.hl7_oru(message_id, status="P")  # OBX-11 P: refused for its content


def type_error(message_id: str) -> str:
    return samples.hl7_oru(message_id).replace("|ORU^R01^ORU_R01|", "|ADT^A01^ADT_A01|")  # MSH-9: refused (AR today)


def elr_error(message_id: str) -> str:
    return samples.hl7_oru(message_id).replace(samples.ELR_PROFILE, "")  # no MSH-21: an ELR rule


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs") / "dev"
    subprocess.run([sys.executable, "-m", "sandbox.devcerts", str(directory)], cwd=ROOT, check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Running]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("sandbox"), certs, "--ack-mode", "enhanced")
    yield sandbox
    if sandbox.process.poll() is None:
        stop_sandbox(sandbox)


@pytest.fixture
def enhanced(running: Running) -> Running:
    running.set_mode("normal", ack_mode="enhanced")
    status, _ = running.control("POST", "/control/reset")
    assert status == 200
    return running


def https_hl7(sandbox: Running, message: str) -> tuple[int, str]:
    status, _, body = sandbox.https("/hl7v2", message.encode("utf-8"), HL7_TYPE)
    return status, body.decode("utf-8")


def msa(ack: str) -> list[str]:
    return segments(ack)["MSA"][1:4]


def err(ack: str) -> list[str]:
    return segments(ack)["ERR"]


# -- the rule, in-process ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "application", "outcome", "expected"),
    [
        ("", "", "AA", "AA"),  # original mode
        ("", "", "AE", "AE"),
        ("", "", "AR", "AR"),
        ("AL", "NE", "AA", "CA"),  # what Relais sends (ELR PHLabReport-NoAck)
        ("AL", "NE", "AE", "CE"),
        ("AL", "NE", "AR", "CR"),
        ("AL", "AL", "AE", "CE"),  # the sandbox commits and validates at once: no separate application ack
        ("ER", "NE", "AA", None),  # accept ack on error only; no application ack asked
        ("ER", "NE", "AE", "CE"),
        ("ER", "NE", "AR", "CR"),
        ("SU", "NE", "AA", "CA"),
        ("SU", "NE", "AE", None),
        ("SU", "AL", "AE", "AE"),  # no accept ack for an error, but the application ack is asked
        ("NE", "AL", "AA", "AA"),
        ("NE", "ER", "AA", None),
        ("NE", "ER", "AR", "AR"),
        ("NE", "NE", "AA", None),
        ("", "AL", "AA", "AA"),  # MSH-16 alone is enhanced mode too: no accept ack asked
    ],
)
def test_answer_code_follows_table_0155(accept: str, application: str, outcome: str, expected: str | None) -> None:
    header = sandbox_hl7.Header(accept_ack_type=accept, application_ack_type=application)
    assert sandbox_hl7.answer_code(header, outcome, "enhanced") == expected
    assert sandbox_hl7.answer_code(header, outcome, "application") == outcome  # what the sandbox has always answered


def test_header_reads_msh_15_and_16() -> None:
    header = sandbox_hl7.read_header(with_ack_types(samples.hl7_oru("HEAD0000000000000001"), "ER", "SU").split("\r")[0])
    assert (header.accept_ack_type, header.application_ack_type) == ("ER", "SU")


def test_parse_mode_keeps_the_ack_mode_unless_given() -> None:
    current = Mode(mode="normal", ack_mode="enhanced")
    assert parse_mode({"mode": "reject"}, current) == Mode(mode="reject", ack_mode="enhanced")
    assert parse_mode({"mode": "down", "ack_mode": "application"}, current).ack_mode == "application"
    slow = Mode(mode="slow", slow_seconds=3.0)
    assert parse_mode({"ack_mode": "enhanced"}, slow) == Mode(mode="slow", slow_seconds=3.0, ack_mode="enhanced")
    with pytest.raises(InvalidMode, match="ack_mode must be one of application, enhanced"):
        parse_mode({"ack_mode": "commit"}, current)
    with pytest.raises(InvalidMode):
        parse_mode({"mode": "normal", "ack_mode": None}, current)


# -- over MLLP and HTTPS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["mllp", "https"])
def test_enhanced_accept_acks(enhanced: Running, transport: str) -> None:
    def send(message: str) -> str:
        if transport == "mllp":
            return enhanced.mllp(message)
        status, body = https_hl7(enhanced, message)
        assert status == 200
        return body

    prefix = "M" if transport == "mllp" else "H"
    # CA: stored
    accepted = send(samples.hl7_oru(f"{prefix}CA0000000000000001"))
    assert parse_message(accepted, validation_level=VALIDATION_LEVEL.STRICT).validate()
    assert msa(accepted) == ["CA", f"{prefix}CA0000000000000001", "message accepted"]
    assert "ERR" not in segments(accepted)
    assert segments(accepted)["MSH"][8] == "ACK^R01^ACK"
    assert [row["message_id"] for row in enhanced.messages()] == [f"{prefix}CA0000000000000001"]

    # CE: refused for its content, with the same ERR and MSA-3 as the AE it replaces
    refused = send(content_error(f"{prefix}CE0000000000000001"))
    assert parse_message(refused, validation_level=VALIDATION_LEVEL.STRICT).validate()
    assert msa(refused)[:2] == ["CE", f"{prefix}CE0000000000000001"]
    assert "OBX-11 result status must be F, C or D" in msa(refused)[2]
    assert err(refused)[2:5] == ["OBX^1^11", "103^Table value not found^HL70357", "E"]
    elr = send(elr_error(f"{prefix}CE0000000000000002"))
    assert msa(elr)[0] == "CE" and "MSH-21" in msa(elr)[2]
    assert err(elr)[2].startswith("MSH^1^21")

    # CR: MSH-9 not accepted (AR in original mode)
    rejected = send(type_error(f"{prefix}CR0000000000000001"))
    assert msa(rejected)[:2] == ["CR", f"{prefix}CR0000000000000001"]
    assert "MSH-9 (message type)" in msa(rejected)[2]
    assert err(rejected)[2:4] == ["MSH^1^9", "200^Unsupported message type^HL70357"]

    stats = enhanced.stats()
    assert (stats["accepted"], stats["rejected"]) == (1, 3)
    assert len(enhanced.messages()) == 1


@pytest.mark.parametrize("transport", ["mllp", "https"])
def test_original_mode_messages_still_get_application_acks(enhanced: Running, transport: str) -> None:
    def send(message: str) -> str:
        return enhanced.mllp(message) if transport == "mllp" else https_hl7(enhanced, message)[1]

    assert msa(send(original(samples.hl7_oru("ORIG0000000000000001"))))[0] == "AA"
    assert msa(send(original(content_error("ORIG0000000000000002"))))[0] == "AE"
    assert msa(send(original(type_error("ORIG0000000000000003"))))[0] == "AR"
    assert [row["message_id"] for row in enhanced.messages()] == ["ORIG0000000000000001"]


def test_application_mode_answers_aa_ae_ar_whatever_msh_15_asks(enhanced: Running) -> None:
    enhanced.set_mode("normal", ack_mode="application")
    assert msa(enhanced.mllp(samples.hl7_oru("APPL0000000000000001")))[0] == "AA"
    assert msa(enhanced.mllp(content_error("APPL0000000000000002")))[0] == "AE"
    assert msa(https_hl7(enhanced, type_error("APPL0000000000000003"))[1])[0] == "AR"
    # ER on success would get nothing in enhanced mode: here it gets its AA
    assert msa(enhanced.mllp(with_ack_types(samples.hl7_oru("APPL0000000000000004"), "ER", "NE")))[0] == "AA"


def test_reject_mode_answers_ce(enhanced: Running) -> None:
    enhanced.set_mode("reject", reason="INS qualifiée requise")
    assert enhanced.control("GET", "/control/mode")[1]["ack_mode"] == "enhanced"  # kept across the switch
    for ack in (enhanced.mllp(samples.hl7_oru("REJE0000000000000001")), https_hl7(enhanced, samples.hl7_oru("REJE0000000000000002"))[1]):
        assert msa(ack)[0] == "CE" and msa(ack)[2] == "INS qualifiée requise"
        assert "ERR" in segments(ack)
    assert msa(enhanced.mllp(original(samples.hl7_oru("REJE0000000000000003"))))[0] == "AR"  # original mode: as before
    assert (enhanced.stats()["accepted"], enhanced.stats()["rejected"]) == (0, 3)


def test_duplicate_gets_its_first_ca_again(enhanced: Running) -> None:
    message = samples.hl7_oru("DUPC0000000000000001")
    with enhanced.mllp_connect() as sock:
        first = mllp_exchange(sock, message)
        second = mllp_exchange(sock, message)
    assert msa(first)[0] == "CA" and second == first
    assert (enhanced.stats()["accepted"], enhanced.stats()["duplicates"]) == (1, 1)


def test_er_on_success_with_no_application_ack_gets_no_answer_but_is_stored(enhanced: Running) -> None:
    quiet = with_ack_types(samples.hl7_oru("QUIE0000000000000001"), "ER", "NE")
    with enhanced.mllp_connect(timeout=1) as sock:
        sock.sendall(b"\x0b" + quiet.encode("utf-8") + b"\x1c\x0d")
        with pytest.raises(socket.timeout):
            sock.recv(100)
        # the connection stays open: the next message gets its own answer
        assert msa(mllp_exchange(sock, content_error("QUIE0000000000000002").replace("|AL|NE|", "|ER|NE|")))[0] == "CE"
    status, response, body = enhanced.https(
        "/hl7v2", with_ack_types(samples.hl7_oru("QUIE0000000000000003"), "ER", "NE").encode(), HL7_TYPE
    )
    assert (status, body) == (204, b"")
    assert response.getheader("Content-Length") is None and response.getheader("Content-Type") is None
    assert msa(https_hl7(enhanced, with_ack_types(samples.hl7_oru("QUIE0000000000000004"), "SU", "NE"))[1])[0] == "CA"
    assert msa(enhanced.mllp(with_ack_types(samples.hl7_oru("QUIE0000000000000005"), "NE", "AL")))[0] == "AA"
    stored = [row["message_id"] for row in enhanced.messages()]
    assert stored == ["QUIE0000000000000001", "QUIE0000000000000003", "QUIE0000000000000004", "QUIE0000000000000005"]


def test_msh_15_outside_table_0155_is_answered_ce(enhanced: Running) -> None:
    ack = enhanced.mllp(with_ack_types(samples.hl7_oru("T01550000000000000001"), "XX", "NE"))
    assert msa(ack)[0] == "CE" and "MSH-15" in msa(ack)[2]
    assert err(ack)[2:4] == ["MSH^1^15", "103^Table value not found^HL70357"]
    assert enhanced.messages() == []


@pytest.mark.parametrize("transport", ["mllp", "https"])
def test_batch_acks_are_accept_acks(enhanced: Running, transport: str) -> None:
    batch = samples.hl7_batch(["BATC0000000000000001", "BATC0000000000000002", "BATC0000000000000003"])
    batch = batch.replace("|BATC0000000000000002|P|", "|BATC0000000000000002|X|")  # MSH-11: CR
    parts = batch.split("\r")
    third = next(i for i, segment in enumerate(parts) if "|BATC0000000000000003|" in segment)
    obx = next(i for i in range(third, len(parts)) if parts[i].startswith("OBX"))
    parts[obx] = parts[obx].replace("^SCT||||||F|||", "^SCT||||||P|||", 1)  # OBX-11 P: CE
    batch = "\r".join(parts)
    ack = enhanced.mllp(batch) if transport == "mllp" else https_hl7(enhanced, batch)[1]
    answers = [segment.split("|")[1:3] for segment in ack.strip("\r").split("\r") if segment.startswith("MSA")]
    assert answers == [["CA", "BATC0000000000000001"], ["CR", "BATC0000000000000002"], ["CE", "BATC0000000000000003"]]
    assert [segment.split("|")[1] for segment in ack.strip("\r").split("\r") if segment.startswith("BTS")] == ["3"]
    assert [row["message_id"] for row in enhanced.messages()] == ["BATC0000000000000001"]


def test_batch_with_an_envelope_problem_is_answered_ce_message_by_message(enhanced: Running) -> None:
    batch = samples.hl7_batch(["BENV0000000000000001", "BENV0000000000000002"]).replace("BTS|2", "BTS|5")
    ack = enhanced.mllp(batch)
    answers = [segment.split("|")[1] for segment in ack.strip("\r").split("\r") if segment.startswith("MSA")]
    assert answers == ["CE", "CE"]
    assert enhanced.messages() == []


def test_batch_leaves_out_messages_that_ask_for_no_ack(enhanced: Running) -> None:
    batch = samples.hl7_batch(["BQUI0000000000000001", "BQUI0000000000000002"])
    batch = batch.replace("|BQUI0000000000000001|P|2.5.1|||AL|NE|", "|BQUI0000000000000001|P|2.5.1|||ER|NE|")
    ack = enhanced.mllp(batch)
    answers = [segment.split("|")[1:3] for segment in ack.strip("\r").split("\r") if segment.startswith("MSA")]
    assert answers == [["CA", "BQUI0000000000000002"]]
    assert [segment.split("|")[1] for segment in ack.strip("\r").split("\r") if segment.startswith("BTS")] == ["1"]
    assert len(enhanced.messages()) == 2


# -- control API and command line --------------------------------------------------------------------------


def test_control_api_switches_the_ack_mode_alone(enhanced: Running) -> None:
    assert enhanced.control("GET", "/control/mode")[1]["ack_mode"] == "enhanced"
    enhanced.set_mode("slow", slow_seconds=5)
    status, data = enhanced.control("POST", "/control/mode", {"ack_mode": "application"})
    assert status == 200
    assert (data["previous"], data["mode"], data["slow_seconds"], data["ack_mode"]) == ("slow", "slow", 5.0, "application")
    status, error = enhanced.control("POST", "/control/mode", {"ack_mode": "commit"})
    assert status == 400 and "ack_mode must be one of" in error["error"]
    enhanced.set_mode("normal")
    assert enhanced.control("GET", "/control/mode")[1]["ack_mode"] == "application"  # "mode" alone keeps it
    assert msa(enhanced.mllp(samples.hl7_oru("SWIT0000000000000001")))[0] == "AA"
    enhanced.control("POST", "/control/mode", {"ack_mode": "enhanced"})
    assert msa(enhanced.mllp(samples.hl7_oru("SWIT0000000000000002")))[0] == "CA"


def test_default_ack_mode_is_application(tmp_path: Path, certs: Path) -> None:
    sandbox = start_sandbox(tmp_path, certs)
    try:
        assert sandbox.control("GET", "/control/mode")[1]["ack_mode"] == "application"
        assert msa(sandbox.mllp(samples.hl7_oru("DEFA0000000000000001")))[0] == "AA"
    finally:
        stop_sandbox(sandbox)
    bad = subprocess.run(
        [sys.executable, "-m", "sandbox", "--data-dir", str(tmp_path / "d"), "--ack-mode", "commit"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--ack-mode" in bad.stderr
