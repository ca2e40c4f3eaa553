"""The worker process: SIGTERM finishes the message in hand, gives back the rest, exits 0."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.transfer.live import Relais, relais_env, start_sandbox


@pytest.mark.parametrize("concurrency", [1, 3])
def test_sigterm_finishes_the_messages_in_hand(tmp_path: Path, concurrency: int) -> None:
    sandbox = start_sandbox(tmp_path)
    try:
        env = relais_env(
            tmp_path, sandbox, destination="sandbox-mllp-hl7v2", RELAIS_TRANSFER_TIMEOUT="10", RELAIS_TRANSFER_CONCURRENCY=str(concurrency)
        )
        relais = Relais(env)
        relais.manage("migrate", "--no-input")
        relais.manage("loadgen", "--screenings", "5", "--patients", "2", "--correct-share", "0", "--no-progress")
        sandbox.mode("slow", slow_seconds=2)
        worker = relais.start_worker()
        deadline = time.monotonic() + 30
        while sandbox.control("/control/stats")["accepted"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the first message is stored; its acknowledgement is 2 s away
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert worker.wait(timeout=20) == 0
        assert time.monotonic() - started < 10
        stats = relais.stats(messages=True)
        by_status = stats["by_status"]
        # What was in flight completes (one message per connection); the rest is handed back, untouched.
        assert 1 <= by_status.get("acknowledged", 0) <= concurrency, by_status
        assert by_status.get("pending", 0) == 5 - by_status["acknowledged"]
        sandbox.mode("normal")
        # Released leases: a new worker takes the rest at once, not after a lease timeout.
        relais.manage("transfer_worker", "--until-empty", timeout=60)
        assert relais.stats()["by_status"] == {"acknowledged": 5}
    finally:
        sandbox.stop()


def test_worker_exits_cleanly_with_nothing_to_do(tmp_path: Path) -> None:
    sandbox = start_sandbox(tmp_path)
    try:
        relais = Relais(relais_env(tmp_path, sandbox, destination="sandbox-https-fhir"))
        relais.manage("migrate", "--no-input")
        output = relais.manage("transfer_worker", "--until-empty")
        assert "0 acknowledged" in output
    finally:
        sandbox.stop()
