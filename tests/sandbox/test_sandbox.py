"""The SI-DEP sandbox, driven as a separate process through raw sockets, ssl and http.client (never through Relais code)."""

from __future__ import annotations

import http.client
import json
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from tests.sandbox import samples

ROOT = Path(__file__).resolve().parents[2]
START = b"\x0b"
END = b"\x1c\x0d"
STARTUP_LINE = re.compile(r"^sandbox: (\w+) on ([\d.]+):(\d+)$")


@dataclass
class Running:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    certs: Path
    data_dir: Path
    stderr: Path

    # -- control API --
    def control(self, method: str, path: str, payload: object = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["control"], timeout=10)
        body = None if payload is None else json.dumps(payload)
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        data = json.loads(response.read())
        conn.close()
        return response.status, data

    def set_mode(self, mode: str, **settings: Any) -> None:
        status, data = self.control("POST", "/control/mode", {"mode": mode, **settings})
        assert status == 200, data

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "/control/stats")[1]

    def messages(self, with_body: bool = False) -> list[dict[str, Any]]:
        return self.control("GET", "/control/messages" + ("?with_body=1" if with_body else ""))[1]

    # -- MLLP --
    def mllp_connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.ports["mllp"]), timeout=timeout)

    def mllp(self, message: str, timeout: float = 10) -> str:
        with self.mllp_connect(timeout) as sock:
            return mllp_exchange(sock, message)

    # -- HTTPS / HTTP --
    def client_context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certs / "ca.pem"))
        if cert is not None and key is not None:
            context.load_cert_chain(cert, key)
        return context

    def https(
        self, path: str, body: bytes, content_type: str, *, timeout: float = 10, context: ssl.SSLContext | None = None
    ) -> tuple[int, http.client.HTTPResponse, bytes]:
        context = context or self.client_context(self.certs / "client.pem", self.certs / "client-key.pem")
        conn = http.client.HTTPSConnection("127.0.0.1", self.ports["https"], context=context, timeout=timeout)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            return response.status, response, response.read()
        finally:
            conn.close()

    def http(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=10)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def fhir(self, bundle: bytes, **kwargs: Any) -> tuple[int, http.client.HTTPResponse, bytes]:
        return self.https("/fhir", bundle, "application/fhir+json", **kwargs)


def mllp_exchange(sock: socket.socket, message: str) -> str:
    sock.sendall(START + message.encode("utf-8") + END)
    return read_frame(sock)


def read_frame(sock: socket.socket) -> str:
    data = b""
    while END not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed by the sandbox after {data!r}")
        data += chunk
    assert data.startswith(START)
    return data[1 : data.index(END)].decode("utf-8")


def segments(message: str) -> dict[str, list[str]]:
    """First occurrence of each segment, split into fields (MSH: index n is MSH-n+1)."""
    found: dict[str, list[str]] = {}
    for segment in message.strip("\r").split("\r"):
        found.setdefault(segment[:3], segment.split("|"))
    return found


def start_sandbox(tmp: Path, certs: Path, *extra: str) -> Running:
    stderr = tmp / "sandbox.log"
    command = [sys.executable, "-m", "sandbox", "--data-dir", str(tmp / "data"), "--certs", str(certs)]
    command += ["--mllp-port", "0", "--https-port", "0", "--http-port", "0", "--control-port", "0", *extra]
    with stderr.open("ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    ports: dict[str, int] = {}
    deadline = time.monotonic() + 20
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic())).rstrip("\n")
        except queue.Empty:
            process.kill()
            pytest.fail(f"the sandbox did not start: {stderr.read_text()}")
        if line == "sandbox: ready":
            break
        match = STARTUP_LINE.match(line)
        assert match, line
        ports[match.group(1)] = int(match.group(3))
    return Running(process, ports, certs, tmp / "data", stderr)


def stop_sandbox(running: Running) -> int:
    running.process.send_signal(signal.SIGTERM)
    return running.process.wait(timeout=10)


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
    status, _ = running.control("POST", "/control/reset")
    assert status == 200
    return running


def wait_for(predicate: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


# -- start-up, certificates -----------------------------------------------------------------------


def test_startup_prints_one_line_per_listener(running: Running) -> None:
    assert set(running.ports) == {"mllp", "https", "http", "control"}
    assert all(port > 0 for port in running.ports.values())


def test_devcerts_are_complete_and_keys_private(certs: Path) -> None:
    for name in ("ca.pem", "server.pem", "client.pem"):
        assert (certs / name).read_text().startswith("-----BEGIN CERTIFICATE-----")
    for name in ("ca-key.pem", "server-key.pem", "client-key.pem"):
        assert (certs / name).stat().st_mode & 0o777 == 0o600
    again = subprocess.run([sys.executable, "-m", "sandbox.devcerts", str(certs)], cwd=ROOT, check=True, capture_output=True, text=True)
    assert "already holds" in again.stdout


# -- HL7 v2 over MLLP -----------------------------------------------------------------------------


def test_valid_hl7_over_mllp_is_acknowledged_aa_and_stored(sandbox: Running) -> None:
    ack = sandbox.mllp(samples.hl7_oru("MLLP0000000000000001"))

    parsed = parse_message(ack, validation_level=VALIDATION_LEVEL.STRICT)
    assert parsed.validate()
    seg = segments(ack)
    assert seg["MSA"][1:3] == ["AA", "MLLP0000000000000001"]
    assert "ERR" not in seg
    assert seg["MSH"][8] == "ACK^R01^ACK"
    assert seg["MSH"][2].startswith("SIDEP^") and seg["MSH"][4].startswith("RELAIS^")  # sender and receiver swapped
    [row] = sandbox.messages(with_body=True)
    assert row["message_id"] == "MLLP0000000000000001"
    assert (row["format"], row["transport"], row["result_status"], row["has_identity"]) == ("hl7v2", "mllp", "F", True)
    assert (row["placer"], row["filler"]) == (samples.SERIES, samples.SCREENING)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", row["received_at"])
    assert row["body"] == samples.hl7_oru("MLLP0000000000000001")
    assert sandbox.stats()["by_format"] == {"hl7v2": 1, "fhir": 0}


def test_same_message_id_is_acknowledged_again_but_stored_once(sandbox: Running) -> None:
    message = samples.hl7_oru("DUPL0000000000000001")
    with sandbox.mllp_connect() as sock:  # the connection stays open for further frames
        first = mllp_exchange(sock, message)
        second = mllp_exchange(sock, message)

    assert segments(first)["MSA"][1] == segments(second)["MSA"][1] == "AA"
    assert second == first
    stats = sandbox.stats()
    assert (stats["accepted"], stats["duplicates"], stats["rejected"]) == (1, 1, 0)
    assert len(sandbox.messages()) == 1


def test_anonymous_correction_is_stored_without_identity(sandbox: Running) -> None:
    assert segments(sandbox.mllp(samples.hl7_oru("ANON0000000000000000", anonymous=True)))["MSA"][1] == "AA"  # the original
    ack = sandbox.mllp(samples.hl7_oru("ANON0000000000000001", anonymous=True, status="C"))

    assert segments(ack)["MSA"][1] == "AA"
    row = sandbox.messages()[-1]
    assert (row["has_identity"], row["result_status"]) == (False, "C")


INVALID_HL7 = [
    (samples.hl7_oru("INVA0000000000000001", status="P"), "OBX^1^11", "OBX-11 result status must be F, C or D, got 'P'"),
    (samples.hl7_oru("INVA0000000000000001", loinc_system="SCT"), "OBX^1^3^1^3", "OBX-3.3 coding system must be LN"),
    (samples.hl7_oru("INVA0000000000000001").rsplit("\rSPM", 1)[0], "SPM", "SPM segment (specimen) is missing"),
    (samples.hl7_oru("INVA0000000000000001").replace("19850512", "1985-05-12"), "PID^1^7^1", "not an HL7 valid date"),
    (samples.hl7_oru("INVA0000000000000001").replace("|ORU^R01^ORU_R01|", "|ADT^A01^ADT_A01|"), "MSH^1^9", "MSH-9 (message type)"),
    (samples.hl7_oru("INVA0000000000000001").replace("|P|2.5.1|", "|X|2.5.1|"), "MSH^1^11", "MSH-11 (processing id) must be P, T or D"),
    (samples.hl7_oru("INVA0000000000000001").replace("|2.5.1|", "|2.3|"), "MSH^1^12", "MSH-12 (version id) must be 2.5.1"),
]
INVALID_HL7_IDS = ["obx11", "obx3-coding-system", "no-spm", "bad-date", "type", "processing-id", "version"]
# HL7 v2.5.1 2.9.2: a message whose MSH-9, MSH-11 or MSH-12 the receiver does not accept is rejected (AR), the others are errors (AE)
REJECTED_LOCATIONS = ("MSH^1^9", "MSH^1^11", "MSH^1^12")


@pytest.mark.parametrize(("message", "location", "reason"), INVALID_HL7, ids=INVALID_HL7_IDS)
def test_invalid_hl7_is_answered_ae_with_a_precise_reason(sandbox: Running, message: str, location: str, reason: str) -> None:
    ack = sandbox.mllp(message)

    seg = segments(ack)
    assert seg["MSA"][1:3] == ["AR" if location in REJECTED_LOCATIONS else "AE", "INVA0000000000000001"]
    assert reason in seg["MSA"][3] or reason in seg["ERR"][8]
    assert seg["ERR"][2] == location
    assert seg["ERR"][4] == "E"
    assert parse_message(ack, validation_level=VALIDATION_LEVEL.STRICT).validate()
    stats = sandbox.stats()
    assert (stats["accepted"], stats["rejected"]) == (0, 1)


def test_garbage_frame_is_answered_ae(sandbox: Running) -> None:
    ack = sandbox.mllp("hello")

    seg = segments(ack)
    assert seg["MSA"][1] == "AE"
    assert "does not start with an MSH segment" in seg["MSA"][3]


def test_batch_is_answered_with_a_batch_of_acks(sandbox: Running) -> None:
    batch = samples.hl7_batch(["BATC0000000000000001", "BATC0000000000000002"])
    invalid = samples.hl7_oru("BATC0000000000000003", status="X")
    batch = batch.replace("\rBTS|2", "\r" + invalid + "\rBTS|3")

    reply = sandbox.mllp(batch)

    lines = reply.strip("\r").split("\r")
    assert [line[:3] for line in lines] == ["FHS", "BHS", "MSH", "MSA", "MSH", "MSA", "MSH", "MSA", "ERR", "BTS", "FTS"]
    acks = [line.split("|")[1:3] for line in lines if line.startswith("MSA")]
    assert acks == [["AA", "BATC0000000000000001"], ["AA", "BATC0000000000000002"], ["AE", "BATC0000000000000003"]]
    assert lines[1].split("|")[11] == "BATCH0001"  # BHS-12: reference to the received BHS-11
    assert lines[-2] == "BTS|3" and lines[-1] == "FTS|1"
    assert sandbox.stats()["accepted"] == 2


def test_batch_with_a_wrong_count_is_refused_message_by_message(sandbox: Running) -> None:
    batch = samples.hl7_batch(["BATC0000000000000011"]).replace("BTS|1", "BTS|5")

    reply = sandbox.mllp(batch)

    msa = [line.split("|") for line in reply.split("\r") if line.startswith("MSA")]
    assert [m[1] for m in msa] == ["AE"]
    assert "BTS-1" in reply
    assert sandbox.stats()["accepted"] == 0


# -- HTTPS (mutual TLS) and HTTP --------------------------------------------------------------------


def test_hl7_over_https(sandbox: Running) -> None:
    status, response, body = sandbox.https("/hl7v2", samples.hl7_oru("HTTP0000000000000001").encode(), "x-application/hl7-v2+er7")

    assert status == 200
    assert response.getheader("Content-Type", "").startswith("x-application/hl7-v2+er7")
    assert segments(body.decode())["MSA"][1:3] == ["AA", "HTTP0000000000000001"]
    assert sandbox.messages()[0]["transport"] == "https"


def test_fhir_over_https_with_client_certificate(sandbox: Running) -> None:
    status, _, body = sandbox.fhir(samples.fhir_bundle("FHIR0000000000000001"))

    assert status == 200, body
    reply = Bundle.model_validate_json(body)
    assert reply.type == "transaction-response"
    assert [entry.response.status for entry in reply.entry or []] == ["201 Created"] * 6
    [row] = sandbox.messages()
    assert (row["message_id"], row["format"], row["transport"]) == ("FHIR0000000000000001", "fhir", "https")
    assert (row["placer"], row["filler"], row["result_status"], row["has_identity"]) == (samples.SERIES, samples.SCREENING, "final", True)

    again = sandbox.fhir(samples.fhir_bundle("FHIR0000000000000001"))
    assert (again[0], again[2]) == (200, body)
    assert (sandbox.stats()["accepted"], sandbox.stats()["duplicates"]) == (1, 1)


def test_anonymous_fhir_bundle_has_no_identity(sandbox: Running) -> None:
    status, _, _ = sandbox.fhir(samples.fhir_bundle("FHIR0000000000000002", anonymous=True, status="entered-in-error"))

    assert status == 200
    [row] = sandbox.messages()
    assert (row["has_identity"], row["result_status"]) == (False, "entered-in-error")


def _bundle_without_loinc(message_id: str) -> bytes:
    bundle = samples.fhir_bundle_dict(message_id)
    bundle["entry"][1]["resource"]["code"]["coding"][0]["system"] = "http://snomed.info/sct"
    return json.dumps(bundle).encode()


def _bundle_of_type(message_id: str) -> bytes:
    bundle = samples.fhir_bundle_dict(message_id)
    bundle["type"] = "collection"
    return json.dumps(bundle).encode()


INVALID_FHIR = [
    (samples.fhir_bundle("FHIR0000000000000003", status="preliminary"), "Bundle.entry[1].resource.status"),
    (_bundle_without_loinc("FHIR0000000000000003"), "no LOINC coding"),
    (_bundle_of_type("FHIR0000000000000003"), "Bundle.type must be 'transaction'"),
    (b'{"resourceType": "Bundle", "type": "transaction", "nonsense": 1}', "Bundle.nonsense"),
    (b"{not json", "not JSON"),
]
INVALID_FHIR_IDS = ["status", "loinc", "type", "unknown-element", "json"]


@pytest.mark.parametrize(("body", "expected"), INVALID_FHIR, ids=INVALID_FHIR_IDS)
def test_invalid_fhir_is_answered_422_with_an_operation_outcome(sandbox: Running, body: bytes, expected: str) -> None:
    status, _, reply = sandbox.fhir(body)

    assert status == 422
    outcome = OperationOutcome.model_validate_json(reply)
    assert expected in (outcome.issue[0].diagnostics or "")
    assert sandbox.stats()["rejected"] == 1
    assert sandbox.messages() == []


def test_https_without_client_certificate_is_refused(sandbox: Running) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        sandbox.fhir(samples.fhir_bundle("NOCERT00000000000001"), context=sandbox.client_context())
    assert sandbox.messages() == []


def test_https_with_a_certificate_from_another_ca_is_refused(sandbox: Running, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "sandbox.devcerts", str(tmp_path / "other")], cwd=ROOT, check=True, capture_output=True)
    context = sandbox.client_context(tmp_path / "other" / "client.pem", tmp_path / "other" / "client-key.pem")

    with pytest.raises((ssl.SSLError, ConnectionError)):
        sandbox.fhir(samples.fhir_bundle("OTHERCA0000000000001"), context=context)
    assert sandbox.messages() == []


def test_plain_http_api_and_its_errors(sandbox: Running) -> None:
    assert sandbox.http("/fhir", samples.fhir_bundle("PLAIN000000000000001"), "application/fhir+json")[0] == 200
    assert sandbox.messages()[0]["transport"] == "http"
    assert sandbox.http("/fhir", samples.fhir_bundle("PLAIN000000000000002"), "text/html")[0] == 415
    assert sandbox.http("/elsewhere", b"x", "text/plain")[0] == 404


def test_body_over_5_mb_is_answered_413(sandbox: Running) -> None:
    with socket.create_connection(("127.0.0.1", sandbox.ports["http"]), timeout=10) as sock:
        sock.sendall(b"POST /fhir HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 5242881\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")


# -- failure modes -----------------------------------------------------------------------------------


def test_down_refuses_connections_until_the_mode_changes(sandbox: Running) -> None:
    open_before = sandbox.mllp_connect()
    sandbox.set_mode("down")

    for name in ("mllp", "https", "http"):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", sandbox.ports[name]), timeout=5)
    with pytest.raises(OSError):  # the connection opened before going down is cut
        mllp_exchange(open_before, samples.hl7_oru("DOWN0000000000000001"))
    open_before.close()
    assert sandbox.stats()["mode"] == "down"

    sandbox.set_mode("normal")
    assert segments(sandbox.mllp(samples.hl7_oru("DOWN0000000000000002")))["MSA"][1] == "AA"
    assert sandbox.fhir(samples.fhir_bundle("DOWN0000000000000003"))[0] == 200
    assert [row["message_id"] for row in sandbox.messages()] == ["DOWN0000000000000002", "DOWN0000000000000003"]


def test_slow_stores_but_answers_after_the_client_timeout(sandbox: Running) -> None:
    sandbox.set_mode("slow", slow_seconds=1.5)

    with sandbox.mllp_connect(timeout=0.5) as sock, pytest.raises(TimeoutError):
        mllp_exchange(sock, samples.hl7_oru("SLOW0000000000000001"))
    with pytest.raises(TimeoutError):
        sandbox.fhir(samples.fhir_bundle("SLOW0000000000000002"), timeout=0.5)

    wait_for(lambda: sandbox.stats()["accepted"] == 2)
    with sandbox.mllp_connect(timeout=5) as sock:  # a patient client does get the answer
        started = time.monotonic()
        assert segments(mllp_exchange(sock, samples.hl7_oru("SLOW0000000000000003")))["MSA"][1] == "AA"
        assert time.monotonic() - started >= 1.4


def test_http500(sandbox: Running) -> None:
    sandbox.set_mode("http500")

    status, _, _ = sandbox.fhir(samples.fhir_bundle("H5000000000000000001"))
    assert status == 500
    with sandbox.mllp_connect() as sock, pytest.raises(ConnectionError):
        mllp_exchange(sock, samples.hl7_oru("H5000000000000000002"))
    assert sandbox.stats()["accepted"] == 0


def test_http429_with_retry_after(sandbox: Running) -> None:
    sandbox.set_mode("http429", retry_after=7)

    status, response, _ = sandbox.https("/hl7v2", samples.hl7_oru("H4290000000000000001").encode(), "x-application/hl7-v2+er7")
    assert status == 429
    assert response.getheader("Retry-After") == "7"
    with sandbox.mllp_connect() as sock, pytest.raises(ConnectionError):
        mllp_exchange(sock, samples.hl7_oru("H4290000000000000002"))
    assert sandbox.stats()["accepted"] == 0


def test_reject(sandbox: Running) -> None:
    sandbox.set_mode("reject")
    seg = segments(sandbox.mllp(samples.hl7_oru("REJE0000000000000001")))
    assert seg["MSA"][1:4] == ["AR", "REJE0000000000000001", "rejected by sandbox: reject mode"]
    assert "ERR" in seg

    sandbox.set_mode("reject", reason="INS qualifiée requise")
    assert segments(sandbox.mllp(samples.hl7_oru("REJE0000000000000002")))["MSA"][3] == "INS qualifiée requise"
    status, _, body = sandbox.fhir(samples.fhir_bundle("REJE0000000000000003"))
    assert status == 422
    assert OperationOutcome.model_validate_json(body).issue[0].diagnostics == "INS qualifiée requise"

    stats = sandbox.stats()
    assert (stats["accepted"], stats["rejected"]) == (0, 3)


def test_ack_lost_stores_then_closes_without_answer(sandbox: Running) -> None:
    sandbox.set_mode("ack_lost")

    with sandbox.mllp_connect() as sock, pytest.raises(ConnectionError):
        mllp_exchange(sock, samples.hl7_oru("LOST0000000000000001"))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        sandbox.fhir(samples.fhir_bundle("LOST0000000000000002"))
    assert [row["message_id"] for row in sandbox.messages()] == ["LOST0000000000000001", "LOST0000000000000002"]

    sandbox.set_mode("normal")  # the retry is a duplicate, acknowledged positively
    assert segments(sandbox.mllp(samples.hl7_oru("LOST0000000000000001")))["MSA"][1] == "AA"
    assert sandbox.stats()["duplicates"] == 1


def test_ack_malformed_stores_then_answers_garbage(sandbox: Running) -> None:
    sandbox.set_mode("ack_malformed")

    with sandbox.mllp_connect() as sock:
        assert "MSH|garbled" in mllp_exchange(sock, samples.hl7_oru("GARB0000000000000001"))
    status, _, body = sandbox.fhir(samples.fhir_bundle("GARB0000000000000002"))
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)
    status, _, body = sandbox.https("/hl7v2", samples.hl7_oru("GARB0000000000000003").encode(), "text/plain")
    assert status == 200
    assert "MSA" not in body.decode()
    assert sandbox.stats()["accepted"] == 3


# -- control API ---------------------------------------------------------------------------------------


def test_control_api(sandbox: Running) -> None:
    assert sandbox.control("GET", "/control/mode") == (
        200,
        {"mode": "normal", "retry_after": 2, "slow_seconds": 30.0, "reason": "rejected by sandbox: reject mode", "ack_mode": "application"},
    )
    status, error = sandbox.control("POST", "/control/mode", {"mode": "sideways"})
    assert status == 400 and "mode must be one of" in error["error"]
    status, error = sandbox.control("POST", "/control/mode", {"mode": "slow", "slow_seconds": -1})
    assert status == 400

    sandbox.mllp(samples.hl7_oru("CTRL0000000000000001"))
    sandbox.mllp(samples.hl7_oru("CTRL0000000000000001"))
    sandbox.mllp(samples.hl7_oru("CTRL0000000000000002", status="P"))
    stats = sandbox.stats()
    assert {k: stats[k] for k in ("accepted", "duplicates", "rejected", "by_format", "mode")} == {
        "accepted": 1,
        "duplicates": 1,
        "rejected": 1,
        "by_format": {"hl7v2": 1, "fhir": 0},
        "mode": "normal",
    }
    assert "body" not in sandbox.messages()[0]
    assert sandbox.messages(with_body=True)[0]["body"].startswith("MSH|")

    status, _ = sandbox.control("POST", "/control/reset")
    assert status == 200
    stats = sandbox.stats()
    assert (stats["accepted"], stats["duplicates"], stats["rejected"]) == (0, 0, 0)
    assert sandbox.messages() == []


# -- process ---------------------------------------------------------------------------------------------


def test_sigterm_exits_0_and_the_store_survives_a_restart(tmp_path: Path, certs: Path) -> None:
    first = start_sandbox(tmp_path, certs)
    try:
        first.mllp(samples.hl7_oru("KEEP0000000000000001"))
        first.mllp(samples.hl7_oru("KEEP0000000000000001"))
    finally:
        assert stop_sandbox(first) == 0
    assert (tmp_path / "data" / "sandbox.sqlite3").exists()

    second = start_sandbox(tmp_path, certs)
    try:
        stats = second.stats()
        assert (stats["accepted"], stats["duplicates"]) == (1, 1)
    finally:
        assert stop_sandbox(second) == 0


# -- fast validation: every message gets the structural checks, a sample the full libraries ---------------


@pytest.fixture(scope="module")
def fast_running(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Running]:
    """A sandbox that never calls hl7apy or fhir.resources on a message: only the fast validators."""
    sandbox = start_sandbox(tmp_path_factory.mktemp("fast"), certs, "--full-validation-first", "0", "--full-validation-every", "0")
    yield sandbox
    if sandbox.process.poll() is None:
        stop_sandbox(sandbox)


@pytest.fixture
def fast(fast_running: Running) -> Running:
    fast_running.set_mode("normal")
    assert fast_running.control("POST", "/control/reset")[0] == 200
    return fast_running


def _bundle_with(message_id: str, change: Any) -> bytes:
    bundle = samples.fhir_bundle_dict(message_id)
    change(bundle)
    return json.dumps(bundle).encode()


MALFORMED_HL7 = [
    (samples.hl7_oru("FAST0000000000000001").replace("\rORC|", "\rZZZ|1\rORC|"), "ZZZ^4", "not allowed in ORU_R01"),
    (samples.hl7_oru("FAST0000000000000001").replace("\rPID|", "\rOBX|9|ST|1^x^LN||x||||||F\rPID|"), "", "does not follow ORU_R01"),
    (samples.hl7_oru("FAST0000000000000001") + "|" * 30, "SPM^1", "SPM has 48 fields, v2.5.1 defines 29"),
    (samples.hl7_oru("FAST0000000000000001").replace(f"|94558-4^{samples.LOINC_DISPLAY}^LN|||", "||||", 1), "OBR^1^4", "OBR-4 is missing"),
    (
        samples.hl7_oru("FAST0000000000000001").replace("|20240315101000+0100|||||", "|2024-03-15|||||", 1),
        "OBR^1^7^1",
        "not an HL7 valid date",
    ),
]


@pytest.mark.parametrize(
    ("message", "location", "reason"), INVALID_HL7 + MALFORMED_HL7, ids=[*INVALID_HL7_IDS, "zzz", "order", "fields", "obr4", "obr7"]
)
def test_fast_validation_still_refuses_malformed_hl7(fast: Running, message: str, location: str, reason: str) -> None:
    ack = fast.mllp(message)

    seg = segments(ack)
    assert seg["MSA"][1] == ("AR" if location in REJECTED_LOCATIONS else "AE")
    assert reason in seg["MSA"][3] or reason in seg["ERR"][8]
    assert seg["ERR"][2] == location
    stats = fast.stats()
    assert (stats["accepted"], stats["rejected"]) == (0, 1)
    assert stats["validation"]["full"]["hl7v2"] == 0


MALFORMED_FHIR = [
    (
        _bundle_with("FAST0000000000000002", lambda b: b["entry"][0]["resource"].update(gender=["female"])),
        "Bundle.entry[0].resource.gender",
    ),
    (_bundle_with("FAST0000000000000002", lambda b: b["entry"][0]["resource"].update(birthDate="12/05/1985")), "not a valid FHIR date"),
    (_bundle_with("FAST0000000000000002", lambda b: b["entry"][1]["resource"].update(colour="red")), "Bundle.entry[1].resource.colour"),
    (_bundle_with("FAST0000000000000002", lambda b: b["entry"][1].update(extra=1)), "Bundle.entry[1].extra"),
    (_bundle_with("FAST0000000000000002", lambda b: b["entry"][1]["request"].update(method="SEND")), "method and url are required"),
    (_bundle_with("FAST0000000000000002", lambda b: b["entry"][1]["resource"].update(resourceType="Observatio")), "unknown resource type"),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    INVALID_FHIR + MALFORMED_FHIR,
    ids=[*INVALID_FHIR_IDS, "cardinality", "date", "element", "entry", "method", "type"],
)
def test_fast_validation_still_refuses_malformed_fhir(fast: Running, body: bytes, expected: str) -> None:
    status, _, reply = fast.fhir(body)

    assert status == 422
    assert expected in (OperationOutcome.model_validate_json(reply).issue[0].diagnostics or "")
    assert fast.messages() == []
    assert fast.stats()["validation"]["full"]["fhir"] == 0


def test_fast_validation_accepts_valid_messages(fast: Running) -> None:
    assert segments(fast.mllp(samples.hl7_oru("FAST0000000000000010")))["MSA"][1] == "AA"
    assert segments(fast.mllp(samples.hl7_oru("FAST0000000000000011", anonymous=True, status="C")))["MSA"][1] == "AA"
    assert fast.fhir(samples.fhir_bundle("FAST0000000000000012"))[0] == 200
    rows = {row["message_id"]: row for row in fast.messages()}
    assert (rows["FAST0000000000000010"]["has_identity"], rows["FAST0000000000000011"]["has_identity"]) == (True, False)
    assert rows["FAST0000000000000012"]["placer"] == samples.SERIES
    assert fast.stats()["validation"]["fast"] == {"hl7v2": 2, "fhir": 1}


def test_the_sample_gets_the_full_libraries(tmp_path: Path, certs: Path) -> None:
    """--full-validation-first 1 --full-validation-every 3: messages 1, 2, 5 (counting from 1) go through hl7apy. A
    message only hl7apy refuses (a birth date with components TS does not have) is refused when sampled, accepted
    otherwise: the fast checks are a floor, the sample is how the rest is still seen."""
    sampled = start_sandbox(tmp_path, certs, "--full-validation-first", "1", "--full-validation-every", "3")
    try:
        codes = [
            segments(sampled.mllp(samples.hl7_oru(f"SAMP{n:016d}").replace("|19850512|", "|19850512^x^y|")))["MSA"][1] for n in range(1, 6)
        ]
        assert codes == ["AE", "AE", "AA", "AA", "AE"]
        assert sampled.stats()["validation"] == {"first": 1, "every": 3, "full": {"hl7v2": 3, "fhir": 0}, "fast": {"hl7v2": 2, "fhir": 0}}
    finally:
        stop_sandbox(sampled)


def test_https_answers_without_the_nagle_stall(sandbox: Running) -> None:
    """Headers and body in one write, TCP_NODELAY: 20 round trips on one keep-alive connection take milliseconds each
    (written apart, each waited for the client's delayed ACK: about 40 ms)."""
    context = sandbox.client_context(sandbox.certs / "client.pem", sandbox.certs / "client-key.pem")
    conn = http.client.HTTPSConnection("127.0.0.1", sandbox.ports["https"], context=context, timeout=10)
    try:
        conn.request("POST", "/fhir", body=samples.fhir_bundle("NAGL0000000000000000"), headers={"Content-Type": "application/fhir+json"})
        conn.getresponse().read()
        started = time.monotonic()
        for n in range(1, 21):
            body = samples.fhir_bundle(f"NAGL{n:016d}")
            conn.request("POST", "/fhir", body=body, headers={"Content-Type": "application/fhir+json"})
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    assert elapsed < 0.6, f"20 keep-alive round trips took {elapsed:.2f} s"
