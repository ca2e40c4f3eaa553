"""The sandbox as a receiver of HL7 v2 versions: one record per test (the filler order number), its history through the
control API, and an AE (ERR-3 204) for a correction or removal that matches no original."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox import samples
from tests.sandbox.test_sandbox import ROOT, Running, segments, start_sandbox, stop_sandbox


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs") / "dev"
    subprocess.run([sys.executable, "-m", "sandbox.devcerts", str(directory)], cwd=ROOT, check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Running]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("sandbox"), certs)
    yield sandbox
    if sandbox.process.poll() is None:
        stop_sandbox(sandbox)


@pytest.fixture
def sandbox(running: Running) -> Running:
    running.set_mode("normal")
    assert running.control("POST", "/control/reset")[0] == 200
    return running


def test_recorded_corrected_removed_is_one_record_with_three_versions(sandbox: Running) -> None:
    for message_id, status in (("VERS0000000000000001", "F"), ("VERS0000000000000002", "C"), ("VERS0000000000000003", "D")):
        assert segments(sandbox.mllp(samples.hl7_oru(message_id, status=status)))["MSA"][1] == "AA"
    # a retried correction (same message id) is a duplicate, not a fourth version
    assert segments(sandbox.mllp(samples.hl7_oru("VERS0000000000000002", status="C")))["MSA"][1] == "AA"

    status, records = sandbox.control("GET", "/control/records?format=hl7v2")
    assert status == 200 and len(records) == 1
    assert (records[0]["test_key"], records[0]["status"], records[0]["versions"]) == (samples.SCREENING, "removed", 3)
    status, history = sandbox.control("GET", f"/control/history?test_key={samples.SCREENING}&format=hl7v2&with_body=1")
    assert status == 200
    assert [(v["sequence"], v["version_status"], v["message_id"]) for v in history] == [
        (1, "final", "VERS0000000000000001"),
        (2, "corrected", "VERS0000000000000002"),
        (3, "removed", "VERS0000000000000003"),
    ]
    assert history[0]["body"] == samples.hl7_oru("VERS0000000000000001")
    assert sandbox.stats()["records"] == 1


@pytest.mark.parametrize("status", ["C", "D"])
def test_a_change_that_matches_no_original_is_refused(sandbox: Running, status: str) -> None:
    ack = segments(sandbox.mllp(samples.hl7_oru("ORPH0000000000000001", status=status)))

    assert ack["MSA"][1:3] == ["AE", "ORPH0000000000000001"]
    assert ack["ERR"][2] == "OBR^1^3" and ack["ERR"][3].startswith("204^Unknown key identifier")
    assert "matches no original" in ack["ERR"][8]
    assert sandbox.messages() == [] and sandbox.control("GET", "/control/records")[1] == []
    assert sandbox.stats()["rejected"] == 1


def test_a_correction_after_a_removal_is_refused(sandbox: Running) -> None:
    for message_id, status in (("AFTR0000000000000001", "F"), ("AFTR0000000000000002", "D")):
        assert segments(sandbox.mllp(samples.hl7_oru(message_id, status=status)))["MSA"][1] == "AA"
    ack = segments(sandbox.mllp(samples.hl7_oru("AFTR0000000000000003", status="C")))
    assert ack["MSA"][1] == "AE" and "was removed" in ack["ERR"][8]


def test_history_needs_a_key_and_an_unknown_key_has_none(sandbox: Running) -> None:
    assert sandbox.control("GET", "/control/history")[0] == 400
    assert sandbox.control("GET", "/control/history?test_key=nothing") == (200, [])
    status, data = sandbox.control("GET", "/control/nowhere")
    assert status == 404 and any("/control/history" in e for e in data["endpoints"])


def test_the_fix_of_an_original_the_platform_rejected_must_come_as_an_original(sandbox: Running) -> None:
    sandbox.set_mode("reject", reason="INS non qualifiée")
    assert segments(sandbox.mllp(samples.hl7_oru("FIXD0000000000000001")))["MSA"][1] == "AR"
    sandbox.set_mode("normal")
    refused = segments(sandbox.mllp(samples.hl7_oru("FIXD0000000000000002", status="C")))
    assert refused["MSA"][1] == "AE" and "a corrected version for test" in refused["MSA"][3]
    assert segments(sandbox.mllp(samples.hl7_oru("FIXD0000000000000003")))["MSA"][1] == "AA"
    history = sandbox.control("GET", f"/control/history?test_key={samples.SCREENING}")[1]
    assert [(v["sequence"], v["version_status"]) for v in history] == [(1, "final")]
