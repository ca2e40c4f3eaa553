"""Transports against the real sandbox process: framing, ACKs, TLS, timeouts, and how each failure is classified."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relais.transfer.formats import fhir, hl7v2
from relais.transfer.outcome import TransientError
from relais.transfer.transports.https import HttpsTransport, retry_after_seconds
from relais.transfer.transports.mllp import MllpTransport, frame
from tests.transfer.live import PY, ROOT, Sandbox, start_sandbox
from tests.transfer.payload_factory import sample_payload


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _normal(sandbox: Sandbox) -> Iterator[None]:
    sandbox.mode("normal")
    yield
    sandbox.mode("normal")


def mllp(sandbox: Sandbox, timeout: float = 2) -> MllpTransport:
    return MllpTransport(host="127.0.0.1", port=sandbox.ports["mllp"], timeout=timeout)


def https(sandbox: Sandbox, path: str, timeout: float = 2, **tls: str) -> HttpsTransport:
    certs = sandbox.certs
    options = {"ca_file": str(certs / "ca.pem"), "cert_file": str(certs / "client.pem"), "key_file": str(certs / "client-key.pem")}
    options.update(tls)
    return HttpsTransport(url=f"https://localhost:{sandbox.ports['https']}{path}", timeout=timeout, **options)


def test_frame() -> None:
    assert frame("MSH|x") == b"\x0bMSH|x\x1c\x0d"


def test_mllp_round_trip_and_dedupe(sandbox: Sandbox) -> None:
    payload = sample_payload()
    transport = mllp(sandbox)
    message = hl7v2.render_oru_r01(payload)
    first = hl7v2.parse_ack(transport.exchange(message))
    second = hl7v2.parse_ack(transport.exchange(message))  # same connection, same message id
    transport.close()
    assert (first.code, first.control_id) == ("AA", payload.message_id)
    assert second.code == "AA"
    stored = [row for row in sandbox.control("/control/messages") if row["message_id"] == payload.message_id]
    assert len(stored) == 1


def test_mllp_reject_is_permanent_with_reason(sandbox: Sandbox) -> None:
    sandbox.mode("reject", reason="PID-7 missing")
    ack = hl7v2.parse_ack(mllp(sandbox).exchange(hl7v2.render_oru_r01(sample_payload())))
    assert ack.code == "AR" and "PID-7 missing" in ack.text


def test_mllp_down_is_transient_and_not_transmitted(sandbox: Sandbox) -> None:
    sandbox.mode("down")
    with pytest.raises(TransientError) as exc:
        mllp(sandbox).exchange(hl7v2.render_oru_r01(sample_payload()))
    assert exc.value.transmitted is False


@pytest.mark.parametrize("mode", ["ack_lost", "http500"])
def test_mllp_lost_answer_is_transient(sandbox: Sandbox, mode: str) -> None:
    sandbox.mode(mode)
    with pytest.raises(TransientError) as exc:
        mllp(sandbox).exchange(hl7v2.render_oru_r01(sample_payload()))
    assert exc.value.transmitted is True


def test_mllp_timeout(sandbox: Sandbox) -> None:
    sandbox.mode("slow", slow_seconds=2)
    started = time.monotonic()
    with pytest.raises(TransientError, match="no acknowledgement within"):
        mllp(sandbox, timeout=0.5).exchange(hl7v2.render_oru_r01(sample_payload()))
    assert time.monotonic() - started < 1.5


def test_mllp_malformed_ack_is_detected(sandbox: Sandbox) -> None:
    sandbox.mode("ack_malformed")
    reply = mllp(sandbox).exchange(hl7v2.render_oru_r01(sample_payload()))
    with pytest.raises(hl7v2.MalformedAck):
        hl7v2.parse_ack(reply)


def test_https_fhir_with_client_certificate(sandbox: Sandbox) -> None:
    payload = sample_payload()
    reply = https(sandbox, "/fhir").exchange(fhir.render_bundle(payload), content_type="application/fhir+json")
    assert reply.status == 200 and '"transaction-response"' in reply.body


def test_https_429_honours_retry_after(sandbox: Sandbox) -> None:
    sandbox.mode("http429", retry_after=7)
    with pytest.raises(TransientError) as exc:
        https(sandbox, "/fhir").exchange(fhir.render_bundle(sample_payload()), content_type="application/fhir+json")
    assert exc.value.retry_after == 7


def test_https_500_is_transient(sandbox: Sandbox) -> None:
    sandbox.mode("http500")
    with pytest.raises(TransientError, match="500"):
        https(sandbox, "/hl7v2").exchange(hl7v2.render_oru_r01(sample_payload()), content_type="x-application/hl7-v2+er7")


def test_https_reject_is_a_4xx_with_reason(sandbox: Sandbox) -> None:
    sandbox.mode("reject", reason="unknown device")
    reply = https(sandbox, "/fhir").exchange(fhir.render_bundle(sample_payload()), content_type="application/fhir+json")
    assert reply.status == 422 and "unknown device" in reply.body


def test_https_server_certificate_is_verified(sandbox: Sandbox, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    subprocess.run([PY, "-m", "sandbox.devcerts", str(other)], cwd=ROOT, check=True, capture_output=True)
    transport = https(sandbox, "/fhir", ca_file=str(other / "ca.pem"))
    with pytest.raises(TransientError, match="certificate"):
        transport.exchange(fhir.render_bundle(sample_payload()), content_type="application/fhir+json")


def test_https_without_client_certificate_is_refused(sandbox: Sandbox) -> None:
    context = ssl.create_default_context(cafile=str(sandbox.certs / "ca.pem"))
    with socket.create_connection(("127.0.0.1", sandbox.ports["https"]), timeout=3) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"POST /fhir HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                if not tls.recv(100):
                    raise ConnectionResetError("closed")


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("garbage") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
