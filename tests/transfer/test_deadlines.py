"""A receiver that trickles its answer must not hold a connection, a batch of sends or the worker past a deadline."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from relais.intake.services import screening_record
from relais.transfer.delivery import Deliverer
from relais.transfer.destinations import Destination, destination
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.services import outbox_claim, outbox_record
from sandbox.server import tls_context
from tests.factories import screening_input
from tests.transfer.live import PY, ROOT, Relais, relais_env, start_sandbox
from tests.transfer.peers import HTTP_TRICKLE, MLLP_TRICKLE, TricklingPeer

DEADLINE = 1.5
MARGIN = 1.0  # scheduling slack on a busy test machine


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("trickle") / "certs"
    subprocess.run([PY, "-m", "sandbox.devcerts", str(directory)], cwd=ROOT, check=True, capture_output=True)
    return directory


@pytest.fixture(params=["mllp", "https"])
def trickling(request: pytest.FixtureRequest, certs: Path) -> Iterator[tuple[TricklingPeer, Destination]]:
    """A trickling receiver and a destination pointing at it (idle timeout longer than the trickle's pauses)."""
    if request.param == "mllp":
        peer = TricklingPeer(MLLP_TRICKLE)
        target = Destination(name="t-mllp", message_format="hl7v2", transport="mllp", port=peer.port, timeout=1, deadline=DEADLINE)
    else:
        peer = TricklingPeer(HTTP_TRICKLE, tls=tls_context(certs))
        target = Destination(
            name="t-https",
            message_format="fhir",
            transport="https",
            url=f"https://localhost:{peer.port}/fhir",
            ca_file=str(certs / "ca.pem"),
            cert_file=str(certs / "client.pem"),
            key_file=str(certs / "client-key.pem"),
            timeout=1,
            deadline=DEADLINE,
        )
    yield peer, target
    peer.stop()


def _claim(owner: Any, patient: Any, count: int, message_format: str) -> list[OutboxMessage]:
    for _ in range(count):
        screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    OutboxMessage.objects.update(message_format=message_format)
    return outbox_claim(owner="test-worker", limit=count)


def test_trickling_receiver_is_abandoned_at_the_deadline_and_retried(
    trickling: tuple[TricklingPeer, Destination], owner: Any, patient: Any
) -> None:
    peer, target = trickling
    [message] = _claim(owner, patient, 1, target.message_format)
    deliverer = Deliverer(target)
    started = time.monotonic()
    try:
        outcomes = deliverer.deliver([message])
    finally:
        elapsed = time.monotonic() - started
        deliverer.close()
    reason = f"no complete acknowledgement within {DEADLINE:g} s"
    assert outcomes[message].kind == "transient" and outcomes[message].detail == reason, outcomes
    assert DEADLINE <= elapsed < DEADLINE + MARGIN, elapsed
    assert peer.received.is_set() and peer.closed.wait(1), "the connection to the receiver was not closed"
    before = timezone.now()
    outbox_record(owner="test-worker", outcomes=outcomes)
    row = OutboxMessage.objects.get(pk=message.pk)
    assert (row.status, row.attempts, row.last_error, row.lease_owner) == (TransferStatus.SENT, 1, reason, "")
    assert row.next_attempt_at > before  # retried, after a backoff


def test_no_send_starts_that_could_outlast_the_batch(trickling: tuple[TricklingPeer, Destination], owner: Any, patient: Any) -> None:
    peer, target = trickling
    messages = _claim(owner, patient, 2, target.message_format)
    deliverer = Deliverer(target, concurrency=1)
    try:
        # Room for one exchange: the second would end after the lease, so it is handed back unstarted.
        outcomes = deliverer.deliver(messages, until=time.monotonic() + DEADLINE + 0.5)
    finally:
        deliverer.close()
    assert list(outcomes) == [messages[0]] and outcomes[messages[0]].kind == "transient"
    assert peer.connections == 1


def test_silent_receivers_are_abandoned_together_at_the_deadline(owner: Any, patient: Any) -> None:
    """The worker's one thread waits on every connection at once: two unanswered messages cost one deadline, not two,
    and each is a transient failure that may have left (the receiver deduplicates the retry)."""
    messages = _claim(owner, patient, 2, "hl7v2")
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:  # connections queue in the backlog, never answered
        target = Destination(
            name="t-silent", message_format="hl7v2", transport="mllp", port=silent.getsockname()[1], timeout=5, deadline=0.5
        )
        deliverer = Deliverer(target, concurrency=2)
        started = time.monotonic()
        try:
            outcomes = deliverer.deliver(messages)
            elapsed = time.monotonic() - started
        finally:
            deliverer.close()
    for message in messages:
        outcome = outcomes[message]
        assert outcome.kind == "transient" and outcome.detail == "no complete acknowledgement within 0.5 s", outcome
        assert outcome.transmitted
    assert 0.5 <= elapsed < 0.5 + MARGIN, elapsed


def test_deadline_is_set_per_destination_or_globally() -> None:
    config = settings.RELAIS_TRANSFER
    slow = {"message_format": "hl7v2", "transport": "mllp", "port": 2575, "deadline": 90}
    with override_settings(RELAIS_TRANSFER={**config, "deadline": 12, "destinations": {**config["destinations"], "slow": slow}}):
        assert destination("slow").deadline == 90
        assert destination("sandbox-mllp-hl7v2").deadline == 12
    with override_settings(RELAIS_TRANSFER={**config, "deadline": 0}), pytest.raises(ImproperlyConfigured, match="deadline"):
        destination("sandbox-mllp-hl7v2")


def test_worker_refuses_a_deadline_that_outlasts_the_lease(db: Any) -> None:
    config = {**settings.RELAIS_TRANSFER, "destination": "sandbox-mllp-hl7v2", "deadline": 30, "lease_seconds": 20}
    with override_settings(RELAIS_TRANSFER=config), pytest.raises(CommandError, match=r"deadline \(30 s\) must end"):
        call_command("transfer_worker", "--until-empty")


def _outbox(database: Path) -> list[tuple[str, int, str, str]]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT status, attempts, last_error, lease_owner FROM transfer_outboxmessage ORDER BY attempts DESC")
        return list(rows)


def test_sigterm_stops_a_worker_held_by_a_trickling_receiver(tmp_path: Path) -> None:
    deadline = 2
    sandbox = start_sandbox(tmp_path)
    peer = TricklingPeer(MLLP_TRICKLE, lifetime=60)
    try:
        env = relais_env(
            tmp_path,
            sandbox,
            destination="sandbox-mllp-hl7v2",
            RELAIS_SANDBOX_MLLP_PORT=str(peer.port),
            RELAIS_TRANSFER_TIMEOUT="1",
            RELAIS_TRANSFER_DEADLINE=str(deadline),
            RELAIS_TRANSFER_CONCURRENCY="2",
            RELAIS_TRANSFER_BACKOFF_BASE="0.1",
            RELAIS_TRANSFER_BACKOFF_CAP="0.2",
        )
        relais = Relais(env)
        relais.manage("migrate", "--no-input")
        relais.manage("loadgen", "--screenings", "3", "--patients", "1", "--correct-share", "0", "--no-progress")
        worker = relais.start_worker()
        waited_until = time.monotonic() + 60
        while peer.requests < 2 and time.monotonic() < waited_until:
            time.sleep(0.05)
        assert peer.requests == 2, "the worker did not send two messages at once"
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            worker.wait(timeout=deadline + 5)
        except subprocess.TimeoutExpired:
            worker.kill()
            pytest.fail(f"the worker was still running {deadline + 5} s after SIGTERM")
        assert worker.returncode == 0 and time.monotonic() - started < deadline + 5
        # The two messages in flight were abandoned with the reason and their leases given back; the third never started.
        reason = f"no complete acknowledgement within {deadline} s"
        assert _outbox(tmp_path / "var" / "relais.sqlite3") == [("sent", 1, reason, ""), ("sent", 1, reason, ""), ("pending", 0, "", "")]
        assert f"2 message(s) to retry: {reason}" in (tmp_path / "var" / "log" / "relais.log").read_text()  # no longer silent
        # A healthy receiver gets all three on the next run.
        Relais({**env, "RELAIS_SANDBOX_MLLP_PORT": str(sandbox.ports["mllp"])}).manage("transfer_worker", "--until-empty", timeout=60)
        assert relais.stats()["by_status"] == {"acknowledged": 3}
    finally:
        peer.stop()
        sandbox.stop()
